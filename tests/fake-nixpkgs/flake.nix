# A stand-in for nixpkgs with just what the project's flake.nix uses, so
# that `nix flake show` can check that flake offline (tests/packaging.bats).
{
  outputs = { self }:
    let
      stub = name: derivation { inherit name; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; };
      pkgsFor = system: {
        stdenv = {
          hostPlatform = { inherit system; };
          mkDerivation = a: stub "${a.pname}-${a.version}" // { inherit (a) meta; };
        };
        mkShell = a: stub "shell";
        pkg-config = stub "pkg-config"; curl = stub "curl"; cjson = stub "cjson";
        libsodium = stub "libsodium"; bats = stub "bats"; mandoc = stub "mandoc";
        zsh = stub "zsh"; fish = stub "fish"; openssh = stub "openssh"; valgrind = stub "valgrind";
      };
    in {
      lib = {
        genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
        platforms.linux = [ "x86_64-linux" "aarch64-linux" "riscv64-linux" ];
      };
      legacyPackages = self.lib.genAttrs [ "x86_64-linux" "aarch64-linux" "riscv64-linux" ] pkgsFor;
    };
}
