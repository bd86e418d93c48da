# The test hive as a flake's `colmena` output (the raw hive, as guides write it).
# Tests copy this directory (with -L: nixpkgs/nixos/fake holds links to tests/flake).
{
  outputs = { self }: {
    colmena = import ./hive-common.nix { nixpkgs = ./nixpkgs; };
  };
}
