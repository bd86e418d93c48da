# A few common options: assertions, warnings, host name, packages, /etc, time zone.
{ lib, ... }:
let inherit (lib) mkOption types; in
{
  options = {
    assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    warnings = mkOption { type = types.listOf types.str; default = [ ]; };
    networking.hostName = mkOption { type = types.str; default = "nixos"; };
    networking.firewall.allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
    environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
    environment.etc = mkOption {
      default = { };
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options.text = mkOption { type = types.lines; };
        options.mode = mkOption { type = types.str; default = "symlink"; };
        options.target = mkOption { type = types.str; default = name; };
      }));
    };
    time.timeZone = mkOption { type = types.nullOr types.str; default = null; };
    services.openssh.enable = lib.mkEnableOption "the OpenSSH daemon";
    services.openssh.ports = mkOption { type = types.listOf types.port; default = [ 22 ]; };
    system.stateVersion = mkOption { type = types.str; default = "25.05"; };
    system.nixos.label = mkOption { type = types.str; default = "25.05.standin"; };
  };
}
