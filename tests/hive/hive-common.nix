# The test hive, shaped like a guide's: meta.nixpkgs, specialArgs, nodes as functions of
# `name` and `nodes`, imports, tags, keys of all three kinds, a node built on its target, a
# node reached as a non-root user, and `defaults`. flake.nix gives it an initialized package
# set; hive.nix leaves meta.nixpkgs out, so that <nixpkgs> is used.
{ nixpkgs ? null }:
{
  meta = {
    name = "testhive";
    description = "The nixos-rebuild-remote test hive";
    specialArgs = { site = "lab"; };
    nodeSpecialArgs.db = { role = "primary"; };
  } // (if nixpkgs == null then { } else {
    nixpkgs = import nixpkgs {
      system = "x86_64-linux";
      overlays = [ (self: super: { motd = "from the meta overlay"; }) ];
    };
  });

  defaults = { pkgs, lib, ... }: {
    environment.systemPackages = [ pkgs.hello ];
    deployment.tags = [ "all" ];
    time.timeZone = lib.mkDefault "UTC";
  };

  # Deployed as root on host t1; its configuration imports a file and reads another node.
  web = { name, nodes, site, pkgs, ... }: {
    imports = [ ./configuration.nix ];
    networking.hostName = name;
    deployment.targetHost = "t1";
    deployment.tags = [ "web" "edge" ];
    environment.etc.motd.text = "${pkgs.motd or "plain"}: ${site}, db is ${nodes.db.config.networking.hostName}";
    deployment.keys."web.key" = {
      text = "a secret text";
      user = "nginx";
      group = "nginx";
      permissions = "0640";
    };
    deployment.keys.from-file = {
      keyFile = ./secret.txt;
      destDir = "/etc/secrets";
      uploadAt = "post-activation";
    };
    users.users.nginx = { isSystemUser = true; group = "nginx"; };
    users.groups.nginx = { };
  };

  # Reached as `deploy` (sudo), with its own port and ssh options; built on its target.
  db = { name, role, lib, ... }: {
    networking.hostName = "${name}-${role}";
    deployment = {
      targetHost = "t2";
      targetPort = 22;
      targetUser = "deploy";
      buildOnTarget = true;
      tags = [ "db" ];
      sshOptions = [ "-o" "ServerAliveInterval=5" ];
      privilegeEscalationCommand = [ "sudo" "-S" "--" ];
      keys.db-password.keyCommand = [ "sh" "-c" "echo generated" ];
    };
    time.timeZone = lib.mkForce "Europe/Paris";
  };

  # No keys: its system is also built directly (direct.nix) to compare.
  worker = { name, nodes, lib, ... }: {
    imports = [ ./configuration.nix ];
    networking.hostName = name;
    deployment.tags = [ "back" ];
    environment.etc.peers.text = lib.concatStringsSep " " (builtins.attrNames nodes);
  };

  # Two modules; only deployable here.
  "local.example" = [
    ({ ... }: { deployment.allowLocalDeployment = true; deployment.targetHost = null; })
    { deployment.replaceUnknownProfiles = false; services.openssh.enable = true; }
  ];
}
