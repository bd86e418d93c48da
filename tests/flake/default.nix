# The same configurations without flakes:
#   nix-build tests/flake/default.nix -A t1.config.system.build.toplevel [--argstr tag TAG]
import ./systems.nix
