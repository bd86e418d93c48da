# A flake whose `colmenaHive` output is an already evaluated hive, shaped as colmena's
# makeHive makes one (schema v0.5), for the test that such a hive is used as it is. There is
# no colmena here: this file builds the same attributes by hand. Tests copy this directory
# with tests/hive/nixpkgs as ./nixpkgs.
{
  outputs = { self }:
    let
      pkgs = import ./nixpkgs { system = "x86_64-linux"; };
      inherit (pkgs) lib;
      key = name: extra: {
        inherit name;
        text = null; keyFile = null; keyCommand = null;
        destDir = "/run/keys"; path = "/run/keys/${name}";
        user = "root"; group = "root"; permissions = "0600"; uploadAt = "pre-activation";
      } // extra;
      deploymentConfig = {
        alpha = {
          targetHost = "t1"; targetPort = null; targetUser = "root";
          allowLocalDeployment = false; buildOnTarget = false; tags = [ "front" ];
          keys.token = key "token" { text = "evaluated secret"; };
          replaceUnknownProfiles = true;
          privilegeEscalationCommand = [ "sudo" "-H" "--" ];
          sshOptions = [ ];
        };
        beta = deploymentConfig.alpha // {
          targetHost = "t2"; tags = [ "back" ]; keys = { };
        };
      };
      nodes = builtins.mapAttrs (name: _: import ./nixpkgs/nixos/lib/eval-config.nix {
        system = "x86_64-linux";
        modules = [ { networking.hostName = name; } ];
      }) deploymentConfig;
      toplevel = builtins.mapAttrs (_: v: v.config.system.build.toplevel) nodes;
      only = names: lib.filterAttrs (n: _: builtins.elem n names);
    in {
      colmenaHive = {
        __schema = "v0.5";
        inherit nodes toplevel deploymentConfig;
        deploymentConfigSelected = names: only names deploymentConfig;
        evalSelected = names: only names toplevel;
        evalSelectedDrvPaths = names: builtins.mapAttrs (_: v: v.drvPath) (only names toplevel);
        metaConfig = {
          name = "evaluated"; description = "made by hand";
          machinesFile = null; allowApplyAll = false;
        };
        introspect = f: f { inherit lib pkgs nodes; };
      };
    };
}
