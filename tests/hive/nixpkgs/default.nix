# A stand-in for nixpkgs (see lib/default.nix): `import ./. { system; overlays; config; }` is
# a package set with what real ones have and our hive evaluator reads (path, system,
# overlays, config, lib) and a few fake packages that build in milliseconds with /bin/sh.
# nixos/lib/eval-config.nix evaluates a NixOS-like configuration whose toplevel is a fake
# system that the deploy path accepts (see tests/flake/systems.nix).
{ system ? builtins.currentSystem or "x86_64-linux", overlays ? [ ], config ? { }, ... }:
let
  lib = import ./lib;
  # A fake package: a derivation whose builder writes bin/NAME (see nixos/fake/build-pkg.sh).
  fakePkg = name: derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ ./nixos/fake/build-pkg.sh ];
    PATH = "/usr/bin:/bin";
  };
  base = self: {
    inherit lib system overlays config;
    path = ./.;
    stdenv.hostPlatform.system = system;
    hello = fakePkg "hello-2.12";
    htop = fakePkg "htop-3.3.0";
    inotify-tools = fakePkg "inotify-tools-4.23.9.0";
    writeText = name: text: builtins.toFile name text;
  };
in
lib.fix (builtins.foldl' (f: overlay: lib.extends overlay f) base overlays)
