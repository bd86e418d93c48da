# nixpkgs.*: the package set the configuration is built with, as `pkgs`.
{ config, lib, ... }:
let cfg = config.nixpkgs; in
{
  options.nixpkgs = {
    system = lib.mkOption { type = lib.types.str; };
    hostPlatform = lib.mkOption { type = lib.types.attrs; default = { inherit (cfg) system; }; };
    overlays = lib.mkOption { type = lib.types.listOf lib.types.unspecified; default = [ ]; };
    config = lib.mkOption {
      type = lib.types.attrs;
      default = { };
    };
  };
  config._module.args.pkgs = import ../.. {
    inherit (cfg) system overlays config;
  };
}
