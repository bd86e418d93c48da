[
  ./nixpkgs.nix
  ./misc.nix
  ./users.nix
  ./systemd.nix
  ./toplevel.nix
]
