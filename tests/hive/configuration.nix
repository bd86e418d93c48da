# A configuration file that a node imports, as a guide's ./configuration.nix.
{ lib, pkgs, ... }:
{
  services.openssh.enable = true;
  environment.systemPackages = [ pkgs.htop ];
  time.timeZone = "Europe/Berlin";
  networking.firewall.allowedTCPPorts = lib.mkBefore [ 443 ];
}
