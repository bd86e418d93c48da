# Fake NixOS configurations for the tests: no nixpkgs, no network, builds in milliseconds.
#
# Each configuration is a plain attrset shaped like the parts of a NixOS configuration that
# nixos-rebuild reads: config.system.build.{toplevel,vm,vmWithBootLoader,images.*} and
# config.nixpkgs.hostPlatform.system. Shared by flake.nix and default.nix, so that both modes
# build the very same store paths for the same tag.
#
# `tag` is mixed into every derivation: a test that writes a new tag into its own copy of this
# directory gets a new generation of every system (new store paths), as an edited configuration
# would. It must be a word that is valid in a store path name (letters, digits, `.-_+`).
{ tag ? builtins.readFile ./tag }:
let
  # The tag file ends in a newline; tests may write one or not.
  tag' = builtins.replaceStrings [ "\n" "\r" " " "\t" ] [ "" "" "" "" ] tag;
  system = "x86_64-linux";

  # Every derivation runs one of the shell scripts next to this file with the machine's /bin/sh
  # (no sandbox on the test hosts), so it needs no package set.
  drv = name: script: attrs: derivation ({
    inherit name system;
    tag = tag';
    builder = "/bin/sh";
    args = [ script ];
    PATH = "/usr/bin:/bin";
  } // attrs);

  # One package shared by all systems of a tag, as a package set is: closures overlap.
  sw = drv "nrr-sw-${tag'}" ./build-sw.sh { };
  # The same for a configuration built natively on another platform.
  swFor = buildSystem:
    if buildSystem == system then sw
    else drv "nrr-sw-${tag'}" ./build-sw.sh { system = buildSystem; };

  # A fake system toplevel. `label` names it in what its switch-to-configuration records
  # (`t1`, or `t1/spec1` for a specialisation); `slug` is the same, fit for a store path name.
  mkToplevel = { label, slug, hostSystem, buildSystem, status, stc, sleep, specialisations, fail ? false, cutoff ? false, packages ? [ ], activationSleep ? 0, container ? false }:
    let sw = swFor buildSystem; in
    drv "nixos-system-${slug}-25.05.${tag'}" ./build-system.sh ({
      inherit label hostSystem sw;
      system = buildSystem;
      etc = drv "nrr-etc-${slug}-${tag'}" ./build-etc.sh { inherit label sw; system = buildSystem; };
      stcTemplate = ./switch-to-configuration.in;
      exitStatus = toString status;
      cutoff = if cutoff then "1" else "";
      extraPackages = packages;
      hasStc = if stc then "1" else "";
      sleepSeconds = toString sleep;
      activationSleep = toString activationSleep;
      failBuild = if fail then "1" else "";
      # "NAME=TOPLEVEL ...": each specialisation is linked as specialisation/NAME.
      specialisations = builtins.concatStringsSep " "
        (map (n: "${n}=${specialisations.${n}}") (builtins.attrNames specialisations));
    } // (if container then { container = "1"; } else { }));

  mkConfig = name:
    { hostSystem ? system, buildSystem ? system, status ? 0, stc ? true, sleep ? 0, fail ? false, cutoff ? false, packages ? [ ], activationSleep ? 0, container ? false }:
    let
      common = { inherit hostSystem buildSystem status stc cutoff container; };
      # Like a real specialisation, spec1 is a whole system of its own, linked from the parent.
      spec1 = mkToplevel (common // {
        label = "${name}/spec1"; slug = "${name}-spec1"; sleep = 0; specialisations = { };
      });
      toplevel = mkToplevel (common // {
        label = name; slug = name; inherit sleep fail packages activationSleep; specialisations = { inherit spec1; };
      });
      vm = bootloader: drv "nixos-vm-${name}-${tag'}" ./build-vm.sh {
        inherit toplevel bootloader;
        hostName = name;
      };
    in {
      config = {
        system.build = {
          inherit toplevel;
          vm = vm "";
          vmWithBootLoader = vm "1";
          images.qcow = drv "nixos-image-qcow-${name}-${tag'}" ./build-image.sh {
            inherit toplevel;
          } // { passthru.filePath = "nixos.qcow2"; };
        };
        nixpkgs.hostPlatform.system = hostSystem;
        networking.hostName = name;
      };
    };
in {
  # Ordinary systems, one per host name the tests' fleets use, and a generic one.
  t1 = mkConfig "t1" { };
  t2 = mkConfig "t2" { };
  t3 = mkConfig "t3" { };
  b1 = mkConfig "b1" { };
  demo = mkConfig "demo" { };
  # Its switch-to-configuration records the call, then exits 1 (a failed activation).
  broken = mkConfig "broken" { status = 1; };
  # Its activation locks ssh out of the host (see tests/lib/sshd-logcmd).
  cutoff = mkConfig "cutoff" { cutoff = true; };
  # A container's system (boot.isContainer): no kernel and no initrd of its own.
  container = mkConfig "container" { container = true; };
  # Has no bin/switch-to-configuration at all (not a bootable NixOS system).
  nostc = mkConfig "nostc" { stc = false; };
  # Cross-built: built by x86_64-linux derivations for a riscv64-linux board.
  riscv = mkConfig "riscv" { hostSystem = "riscv64-linux"; };
  # Cross-built for a POWER9 machine, which uname calls ppc64le and Nix powerpc64le.
  ppc = mkConfig "ppc" { hostSystem = "powerpc64le-linux"; };
  # Cross-built for MIPS boards of either byte order, which uname calls mips64 alike.
  mipsel = mkConfig "mipsel" { hostSystem = "mips64el-linux"; };
  mipsbe = mkConfig "mipsbe" { hostSystem = "mips64-linux"; };
  # 32-bit little-endian MIPS, which a mips64el kernel runs too (as x86_64 runs i686).
  mips32el = mkConfig "mips32el" { hostSystem = "mipsel-linux"; };
  # ARM: a 64-bit system, and 32-bit ones, which an armv7l board runs (armv6l too) and an
  # aarch64 one only if its CPU runs 32-bit code.
  arm64 = mkConfig "arm64" { hostSystem = "aarch64-linux"; };
  armv7 = mkConfig "armv7" { hostSystem = "armv7l-linux"; };
  armv6 = mkConfig "armv6" { hostSystem = "armv6l-linux"; };
  # Native: its derivations are riscv64-linux ones, which only a riscv64 machine builds.
  riscvnative = mkConfig "riscvnative" { hostSystem = "riscv64-linux"; buildSystem = "riscv64-linux"; };
  # Its toplevel takes 30 s to build: for tests that interrupt a build.
  slow = mkConfig "slow" { sleep = 30; };
  # Its toplevel takes 4 s to build: for tests of what happens meanwhile.
  slowish = mkConfig "slowish" { sleep = 4; };
  # Its switch-to-configuration (switch, test) takes 5 s, talking on stderr before and after as
  # a real one does: for tests that interrupt an activation.
  slowswitch = mkConfig "slowswitch" { activationSleep = 5; };
  # Its packages are named by the file `packages` ("name-version" words), so that a test can
  # change, add and remove packages between two deploys and check the diff.
  pkgs = mkConfig "pkgs" {
    packages = map (p: drv p ./build-pkg.sh { })
      (builtins.filter (w: builtins.isString w && w != "")
        (builtins.split "[ \n]+" (builtins.readFile ./packages)));
  };
  # Its toplevel's builder fails, after saying why: a failed build.
  failbuild = mkConfig "failbuild" { fail = true; };
  # A package whose name holds '?', a glob character that is legal in a store path.
  globby = mkConfig "globby" { packages = [ (drv "glob?char-1.0" ./build-pkg.sh { }) ]; };
  # Takes a minute and more to evaluate, inside one builtin that does not look at signals: a
  # regular expression that backtracks exponentially (C++'s std::regex, about 3x per "a";
  # 19 of them: 60 s on a fast machine, in 25 MiB), where nix 2.8 notices SIGTERM only after
  # it. For tests that interrupt an evaluation. (A sort of a long list with lessThan, used
  # before, takes Nix's fast path and can end in half a second.)
  sloweval = mkConfig "sloweval" {
    packages = builtins.seq (builtins.match "(a*)*b" "aaaaaaaaaaaaaaaaaaa") [ ];
  };
}
