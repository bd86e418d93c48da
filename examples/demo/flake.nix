# The example of `make demo`: a fake NixOS system that needs no nixpkgs and
# no network, so the demo runs offline in seconds. Its switch-to-configuration
# records what it was asked to do in /run/nrr-activations on the target.
{
  description = "nixos-rebuild-remote demo";
  outputs = { self }:
    let
      system = "x86_64-linux";
      sw = derivation {
        name = "demo-sw";
        inherit system;
        builder = "/bin/sh";
        args = [ ./build-sw.sh ];
        PATH = "/usr/bin:/bin";
      };
      toplevel = derivation {
        name = "nixos-system-demo-25.05";
        inherit system sw;
        message = builtins.readFile ./motd;
        builder = "/bin/sh";
        args = [ ./build-system.sh ];
        PATH = "/usr/bin:/bin";
      };
    in {
      nixosConfigurations.demo.config.system.build.toplevel = toplevel;
    };
}
