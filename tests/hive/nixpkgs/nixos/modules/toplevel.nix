# system.build.toplevel: a fake system (tests/flake/build-system.sh) whose derivation holds
# everything the configuration says (packages, /etc, users, units, activation scripts), so
# that two configurations build the same store path only when they say the same.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  system = config.nixpkgs.system;
  drv = name: script: attrs: derivation ({
    inherit name system;
    builder = "/bin/sh";
    args = [ script ];
    PATH = "/usr/bin:/bin";
    tag = "standin";
  } // attrs);
  label = config.networking.hostName;
  sw = drv "nrr-sw-standin" ./../fake/build-sw.sh { };
  script = v: if builtins.isString v then v else v.text;
  activation = lib.concatStringsSep "\n" (lib.mapAttrsToList
    (n: v: "#### ${n}\n${script v}") config.system.activationScripts);
  # users.users, created by the fake switch-to-configuration (tests/flake) on switch and test,
  # as NixOS's activation creates them: "NAME:GROUP" words
  createUsers = lib.optionalAttrs (config.users.users != { }) {
    createUsers = lib.concatStringsSep " " (lib.mapAttrsToList
      (n: u: "${u.name}:${if u.group == "" then u.name else u.group}") config.users.users);
  };
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  toplevel = drv "nixos-system-${label}-${config.system.nixos.label}" ./../fake/build-system.sh (createUsers // {
    inherit label sw;
    hostSystem = system;
    etc = drv "nrr-etc-${label}" ./../fake/build-etc.sh { inherit label sw; };
    stcTemplate = ./../fake/switch-to-configuration.in;
    exitStatus = "0";
    cutoff = "";
    extraPackages = config.environment.systemPackages;
    hasStc = "1";
    sleepSeconds = "0";
    activationSleep = "0";
    failBuild = "";
    specialisations = "";
    activationScript = activation;
    configuration = builtins.toJSON {
      inherit (config) users time networking;
      etc = config.environment.etc;
      systemd = { inherit (config.systemd) services paths; };
      openssh = config.services.openssh;
      stateVersion = config.system.stateVersion;
    };
  });
in
{
  options.system.build = mkOption { type = types.attrsOf types.unspecified; default = { }; };
  config.system.build.toplevel =
    if failed != [ ] then
      throw "\nFailed assertions:\n${lib.concatMapStringsSep "\n" (m: "- ${m}") failed}"
    else lib.foldr (w: x: builtins.trace "warning: ${w}" x) toplevel config.warnings;
}
