# The test hive without a flake: meta.nixpkgs is left out, so <nixpkgs> (NIX_PATH) is used.
import ./hive-common.nix { }
