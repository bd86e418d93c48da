# Test flake of nixos-rebuild-remote: fake NixOS configurations, no inputs, no network.
# Tests copy this directory out of the git repository (flake_copy in tests/lib/fleet.bash),
# since inside a repository nix sees only files that are git-added.
{
  description = "Fake NixOS configurations for the nixos-rebuild-remote tests";
  outputs = { self }: {
    nixosConfigurations = import ./systems.nix { };
  };
}
