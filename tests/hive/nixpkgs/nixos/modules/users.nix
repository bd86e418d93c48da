# users.users and users.groups.
{ lib, ... }:
let inherit (lib) mkOption types; in
{
  options.users = {
    users = mkOption {
      default = { };
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options = {
          name = mkOption { type = types.str; default = name; };
          isNormalUser = mkOption { type = types.bool; default = false; };
          isSystemUser = mkOption { type = types.bool; default = false; };
          uid = mkOption { type = types.nullOr types.int; default = null; };
          group = mkOption { type = types.str; default = ""; };
          extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
          description = mkOption { type = types.str; default = ""; };
          home = mkOption { type = types.path; default = "/var/empty"; };
        };
      }));
    };
    groups = mkOption {
      default = { };
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options.name = mkOption { type = types.str; default = name; };
        options.gid = mkOption { type = types.nullOr types.int; default = null; };
      }));
    };
  };
}
