# nixos-rebuild-remote as a Nix flake: `nix build`, `nix run`, `nix develop`.
{
  description = "nixos-rebuild for other machines: one ssh connection per host, streamed closures";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "riscv64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs: {
        default = pkgs.stdenv.mkDerivation {
          pname = "nixos-rebuild-remote";
          version = "0.1.0";
          src = self;
          nativeBuildInputs = [ pkgs.pkg-config ];
          buildInputs = [ pkgs.curl pkgs.cjson pkgs.libsodium ];
          makeFlags = [ "PREFIX=$(out)" ];
          # the suite needs root and mount namespaces: `make check` outside the sandbox
          doCheck = false;
          buildFlags = [ "nixos-rebuild-remote" ];
          meta = {
            description = "Drop-in nixos-rebuild for deploying to other machines";
            mainProgram = "nixos-rebuild-remote";
            platforms = nixpkgs.lib.platforms.linux;
          };
        };
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ];
          packages = [ pkgs.bats pkgs.mandoc pkgs.zsh pkgs.fish pkgs.openssh pkgs.valgrind ];
        };
      });
    };
}
