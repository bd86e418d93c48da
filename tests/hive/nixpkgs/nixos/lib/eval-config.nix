# The stand-in's NixOS entry point, with the interface of nixpkgs' nixos/lib/eval-config.nix:
# { system, modules, specialArgs, ... } to { config, options, pkgs, lib, _module, ... }.
{ system ? builtins.currentSystem or "x86_64-linux"
, modules
, specialArgs ? { }
, baseModules ? import ../modules/module-list.nix
, lib ? import ../../lib
, check ? true
, prefix ? [ ]
, ...
}:
let
  systemModule = {
    _file = toString ./eval-config.nix;
    key = toString ./eval-config.nix;
    config = lib.mkMerge [
      { nixpkgs.system = lib.mkDefault system; }
      { _module.check = lib.mkDefault check; }
    ];
  };
  result = lib.evalModules {
    modules = baseModules ++ [ systemModule ] ++ modules;
    specialArgs = { modulesPath = toString ../modules; } // specialArgs;
    inherit prefix;
  };
in
result // { pkgs = result._module.args.pkgs; inherit lib; }
