# Ten nodes fl01..fl10 (the first `nodes` of them: bench/run --hive-nodes), reached by their names (deployment.targetHost defaults to the node's
# name), each with three keys of the three kinds (two before activation, one after). Every
# node's system holds two payload files of 512 KiB (bench/flake's blobs) that change with
# `tag`: a new tag makes new paths, about 1 MiB, on every node; the same tag again is a no-op.
{ tag ? builtins.readFile ./tag, count ? builtins.fromJSON (builtins.readFile ./nodes) }:
let
  tag' = builtins.replaceStrings [ "\n" " " ] [ "" "" ] tag;
  blob = seed: derivation {
    name = "nrr-blob-${seed}";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ ./build-bench-blob.sh ];
    PATH = "/usr/bin:/bin";
    inherit seed;
    size = toString (512 * 1024);
  };
  payload = builtins.genList (i: blob "${tag'}-hive-${toString i}") 2;
  names = builtins.genList (i: "fl" + (if i < 9 then "0" else "") + toString (i + 1)) count;
  node = { name, nodes, ... }: {
    networking.hostName = name;
    environment.systemPackages = payload;
    environment.etc.bench-peers.text = builtins.concatStringsSep " " (builtins.attrNames nodes);
    deployment.tags = [ "bench" ];
    deployment.keys = {
      "api-token" = { text = "token of ${name}"; };
      "tls.key" = { keyFile = ./secret.txt; permissions = "0640"; };
      "db-password" = {
        keyCommand = [ "sh" "-c" "echo password of ${name}" ];
        uploadAt = "post-activation";
      };
    };
  };
in
{
  meta = {
    name = "bench";
    nixpkgs = import ./nixpkgs { system = "x86_64-linux"; };
  };
  defaults = { ... }: { time.timeZone = "UTC"; };
} // builtins.listToAttrs (map (name: { inherit name; value = node; }) names)
