# Configurations that bench/run deploys:
#
#   small   a system of 3 paths (toplevel, sw, etc), like the test flake's t1: noop and
#           build-host deploy it
#   fresh   a system whose closure is 43 paths, about 20 MiB: 40 files of 512 KiB, of which
#           32 do not depend on the tag (bench/run seeds the target with them: about 80% of
#           the bytes are there already) and 8 do, plus sw, etc and the toplevel. Every new
#           tag makes 11 new paths, about 4 MiB to copy.
#   heavy   small, but its evaluation costs about 2 s: its toplevel carries the result of a
#           pointless pure computation, sized by the file `heavy-n` that bench/run calibrates
#           on the machine at hand.
#   fl01 .. fl10
#           the fleet: one system per host (--on fl01,...), each small plus 2 payload files of
#           512 KiB that all ten share and that change with the tag: a new tag makes 5 new
#           paths, about 1 MiB, per host.
#   h001 .. hN
#           the big fleet of bench/fleet (N from the file `fleet-n`, absent: none): each
#           host's system is small plus 2 payload files of 512 KiB that all N share and 1
#           of 256 KiB of its own, so that a host's closure is 6 paths, about 1.3 MiB, of
#           which 1 MiB is the same on every host (as a fleet's common packages are).
#
# The systems look like the test systems (tests/flake/build-system.sh), with builders of their
# own (build-bench-*.sh) so that the test flake may change: bin/switch-to-configuration that
# records its calls, nixos-version, kernel, ...
{ tag ? builtins.readFile ./tag, heavyN ? builtins.readFile ./heavy-n
, fleetN ? (if builtins.pathExists ./fleet-n then builtins.readFile ./fleet-n else "0")
, buildSecs ? (if builtins.pathExists ./build-secs then builtins.readFile ./build-secs else "0") }:
let
  strip = s: builtins.replaceStrings [ "\n" "\r" " " "\t" ] [ "" "" "" "" ] s;
  tag' = strip tag;
  system = "x86_64-linux";

  drv = name: script: attrs: derivation ({
    inherit name system;
    builder = "/bin/sh";
    args = [ script ];
    PATH = "/usr/bin:/bin";
  } // attrs);

  # 512 KiB of pieces of this machine's shared libraries, chosen by `seed`: as compressible as
  # a real system's files (about 2.5 to 1 with gzip), so that ssh's Compression can be weighed
  # (bench/run --compression); without it, as big on the wire as in the store.
  blobOf = kib: seed: blobWith kib seed { };
  blobWith = kib: seed: extra: drv "nrr-blob-${seed}" ./build-bench-blob.sh ({
    inherit seed;
    size = toString (kib * 1024);
  } // extra);
  blob = blobOf 512;
  shared = builtins.genList (i: blob "shared-${toString i}") 32;
  tagged = builtins.genList (i: blob "${tag'}-${toString i}") 8;

  mkSystem = { name, blobs, extra ? { } }:
    let
      sw = drv "nrr-sw-${name}-${tag'}" ./build-bench-sw.sh {
        tag = tag';
        blobs = builtins.concatStringsSep " " (map toString blobs);
      };
      etc = drv "nrr-etc-${name}-${tag'}" ./build-bench-etc.sh { label = name; inherit sw; };
      toplevel = drv "nixos-system-${name}-25.05.${tag'}" ./build-bench-system.sh ({
        label = name;
        tag = tag';
        hostSystem = system;
        inherit sw etc;
      } // extra);
    in {
      config = {
        system.build = { inherit toplevel; };
        nixpkgs.hostPlatform.system = system;
        networking.hostName = name;
      };
    };

  # n times a sum of 1000 products: the cost grows with n (about 2 s for n = 12000 on the
  # bench machine); bench/run calibrates n (the file heavy-n) to 2 s on the machine at hand.
  # Nested folds over short lists keep memory flat: each inner list is garbage once summed.
  n = builtins.fromJSON (strip heavyN);
  inner = i: builtins.foldl' (a: j: a + i * j) 0 (builtins.genList (x: x) 1000);
  weight = builtins.foldl' (acc: i: acc + inner i) 0 (builtins.genList (x: x) n);

  fleetNames = builtins.genList (i: "fl" + (if i < 9 then "0" else "") + toString (i + 1)) 10;
  fleetBlobs = builtins.genList (i: blob "${tag'}-fleet-${toString i}") 2;
  pad3 = i: let s = toString i; in
    if i < 10 then "00" + s else if i < 100 then "0" + s else s;
  bigNames = builtins.genList (i: "h" + pad3 (i + 1)) (builtins.fromJSON (strip fleetN));
  # bench/fleet --build-secs S: the first payload all N share takes S seconds to build (as a
  # fleet's common package would), so that the fleet's build is timed; none by default
  secs = strip buildSecs;
  slow = i: if i == 0 && secs != "0" then { sleepSeconds = secs; } else { };
  bigShared = builtins.genList (i: blobWith 512 "${tag'}-big-shared-${toString i}" (slow i)) 2;
in {
  small = mkSystem { name = "small"; blobs = [ ]; };
  fresh = mkSystem { name = "fresh"; blobs = shared ++ tagged; };
  heavy = mkSystem { name = "heavy"; blobs = [ ]; extra = { weight = toString weight; }; };
} // builtins.listToAttrs (map (name: {
  inherit name;
  value = mkSystem { inherit name; blobs = fleetBlobs; };
}) fleetNames) // builtins.listToAttrs (map (name: {
  inherit name;
  value = mkSystem { inherit name; blobs = bigShared ++ [ (blobOf 256 "${tag'}-${name}") ]; };
}) bigNames)
