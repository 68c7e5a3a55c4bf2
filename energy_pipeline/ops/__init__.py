"""Running on a real site: service units, systemd notify, site VPN."""
