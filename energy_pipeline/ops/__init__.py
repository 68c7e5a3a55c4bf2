"""Running the product on a real site: systemd units and their install, the systemd notify
protocol, container files' companions.

Same floor as the collector: it may import config, logs and lake, never defs, simulators or
the collector (the collector imports `ops.notify`, so the arrow must point that way only).
"""
