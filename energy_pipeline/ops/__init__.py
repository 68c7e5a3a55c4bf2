"""Running the product on a real site: systemd units and their install, the systemd notify
protocol, container files' companions, the site VPN (`ops.vpn`).

Same floor as the collector: it may import config, logs and lake, never defs or simulators.
The collector imports `ops.notify`; `ops.vpn` uses the collector's state types (its tunnel
state lives in the collector's live state) but no module of the collector imports `ops.vpn`,
so there is no import cycle.
"""
