# Benchmark flake of nixos-rebuild-remote (see bench.nix). bench/run copies this directory out
# of the git repository before use (nix would see only git-added files inside it) and writes
# `tag` (and `heavy-n`) into the copy. It shares nothing with the test flake (tests/flake), so
# that changes to the tests do not move the benchmark's numbers.
{
  description = "Benchmark configurations for nixos-rebuild-remote";
  outputs = { self }: {
    nixosConfigurations = import ./bench.nix { };
  };
}
