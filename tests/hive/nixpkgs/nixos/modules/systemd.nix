# systemd.services, systemd.paths and system.activationScripts, as far as hives use them.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  unitOptions = {
    enable = mkOption { type = types.bool; default = true; };
    description = mkOption { type = types.str; default = ""; };
    wantedBy = mkOption { type = types.listOf types.str; default = [ ]; };
    after = mkOption { type = types.listOf types.str; default = [ ]; };
    wants = mkOption { type = types.listOf types.str; default = [ ]; };
  };
in
{
  options.systemd = {
    services = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        options = unitOptions // {
          path = mkOption { type = types.listOf types.package; default = [ ]; };
          environment = mkOption { type = types.attrsOf types.str; default = { }; };
          serviceConfig = mkOption { type = types.attrsOf types.unspecified; default = { }; };
          script = mkOption { type = types.lines; default = ""; };
          preStart = mkOption { type = types.lines; default = ""; };
        };
      });
    };
    paths = mkOption {
      default = { };
      type = types.attrsOf (types.submodule {
        options = unitOptions // {
          pathConfig = mkOption { type = types.attrsOf types.unspecified; default = { }; };
        };
      });
    };
  };
  options.system.activationScripts = mkOption {
    default = { };
    type = types.attrsOf (types.either types.str (types.submodule {
      options.deps = mkOption { type = types.listOf types.str; default = [ ]; };
      options.text = mkOption { type = types.lines; };
    }));
  };
  config.system.activationScripts = {
    users = "echo setting up users";
    groups = "echo setting up groups";
  };
}
