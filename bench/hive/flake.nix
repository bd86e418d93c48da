# The benchmark's colmena hive (bench/run's hive scenarios), shaped as a guide writes one: the
# raw `colmena` output of a flake. bench/run copies this directory out of the repository and
# puts the stand-in nixpkgs of the tests (tests/hive/nixpkgs, the only module system here) in
# the copy as ./nixpkgs, and writes `tag`.
{
  outputs = { self }: {
    colmena = import ./hive.nix { };
  };
}
