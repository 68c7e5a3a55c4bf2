"""Only what changed: `/api/telemetry?since=<seq>` answers with the values that changed after
`seq`, so a dashboard refreshing every few seconds gets a few hundred bytes instead of every
value of every device.

A sequence number is the store's version at the time a snapshot was taken; each value keeps
the sequence at which it last changed. Snapshots are taken lazily, on request, so a collector
nobody watches pays nothing; a change between two snapshots is stamped with the later one,
which is still after any sequence a client holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DeviceEntry:
    timestamp: str | None = None
    state: str = "starting"
    values: dict[str, float] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    head_seq: int = 0
    """When timestamp or state last changed."""


class ChangeFeed:
    def __init__(self) -> None:
        self.seq = 0
        self.devices: dict[str, DeviceEntry] = {}

    def update(self, seq: int, snapshot: dict[str, tuple[str | None, str, dict[str, float]]]):
        """Fold in the latest (timestamp, state, values) of every device at store version seq."""
        if seq == self.seq and self.devices:
            return
        self.seq = seq
        for device, (timestamp, state, values) in snapshot.items():
            entry = self.devices.setdefault(device, DeviceEntry())
            if entry.timestamp != timestamp or entry.state != state or not entry.head_seq:
                entry.timestamp, entry.state, entry.head_seq = timestamp, state, seq
            old = entry.values
            for name, value in values.items():
                if old.get(name) != value:
                    entry.changed[name] = seq
            for name in old.keys() - values.keys():
                entry.changed.pop(name, None)
            entry.values = values

    def since(self, since: int, metrics: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """Devices and values changed after `since`; everything when `since` is 0 or from
        another run of the collector (greater than the current sequence). `metrics` limits
        each device to the listed metrics (the dashboard's cards)."""
        full = since <= 0 or since > self.seq
        devices: dict[str, Any] = {}
        for device, entry in self.devices.items():
            wanted = metrics.get(device) if metrics is not None else None
            names = entry.values.keys() if wanted is None else wanted
            values = {
                n: entry.values[n]
                for n in names
                if n in entry.values and (full or entry.changed.get(n, 0) > since)
            }
            if full or values or entry.head_seq > since:
                devices[device] = {
                    "timestamp": entry.timestamp,
                    "state": entry.state,
                    "values": values,
                }
        return {"seq": self.seq, "full": full, "devices": devices}
