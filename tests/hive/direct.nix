# The system of a node without keys, built straight with the stand-in's eval-config.nix from
# the modules colmena gives it, in colmena's order: meta.nixpkgs's overlays and config
# (mkBefore), the deployment options (only declared here: they do not reach the system),
# `defaults`, the node's own modules; specialArgs { name; nodes; } // meta.specialArgs //
# meta.nodeSpecialArgs.NAME. Our evaluator must give the very same store path.
#   nix-build direct.nix --argstr node worker
{ node }:
let
  hive = import ./hive-common.nix { nixpkgs = ./nixpkgs; };
  pkgs = hive.meta.nixpkgs;
  inherit (pkgs) lib;
  names = builtins.filter (n: n != "meta" && n != "defaults") (builtins.attrNames hive);
  modulesOf = n: lib.toList hive.${n};
  settings = {
    nixpkgs.overlays = lib.mkBefore pkgs.overlays;
    nixpkgs.config = lib.mkBefore pkgs.config;
  };
  deploymentDeclared = { options.deployment = lib.mkOption { type = lib.types.attrs; default = { }; }; };
  evalNode = extra: name: import (pkgs.path + "/nixos/lib/eval-config.nix") {
    inherit (pkgs) system;
    modules = [ settings deploymentDeclared hive.defaults ] ++ extra ++ modulesOf name;
    specialArgs = { inherit name nodes; } // hive.meta.specialArgs
      // (hive.meta.nodeSpecialArgs.${name} or { });
  };
  nodes = lib.genAttrs names (evalNode [ { _module.check = false; } ]);
in
(evalNode [ ] node).config.system.build.toplevel
