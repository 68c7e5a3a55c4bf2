"""The collector's live state: what the status file, the metrics and the health page show.

Mutated only from the collector's event loop; readers on the same loop (live outputs) see a
consistent picture between two awaits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DeviceStateName = Literal["starting", "up", "down", "vpn_down"]
"""`vpn_down`: the device's site tunnel is down, so it was not asked (not the device's fault)."""


@dataclass(slots=True)
class DeviceState:
    device_id: str
    interval: float
    state: DeviceStateName = "starting"
    last_ack_ts: datetime | None = None
    consecutive_failures: int = 0
    next_retry: datetime | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    down_since: datetime | None = None
    polls_ok: int = 0
    polls_failed: int = 0
    missed_ticks: int = 0
    backoff_skips: int = 0
    invalid_values: int = 0
    last_latency_ms: float | None = None
    last_lateness_ms: float | None = None


@dataclass(slots=True)
class TunnelState:
    """A site VPN tunnel as openvpn's management interface reports it. `state` is openvpn's own
    name (CONNECTING, WAIT, AUTH, CONNECTED, RECONNECTING, EXITING, ...), or DOWN while no
    openvpn runs and FAILED once `max_retries` ran out."""

    name: str
    state: str = "DOWN"
    since: datetime | None = None
    local_ip: str | None = None
    remote_ip: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    restarts: int = 0
    last_error: str | None = None
    pid: int | None = None
    management_port: int | None = None

    @property
    def up(self) -> bool:
        return self.state == "CONNECTED"


@dataclass(slots=True)
class CollectorState:
    collector_id: str
    pid: int
    started_at: datetime
    devices: dict[str, DeviceState] = field(default_factory=dict)
    vpn: dict[str, TunnelState] = field(default_factory=dict)
    sealed_watermark: datetime | None = None
    wal_backlog_bytes: int = 0
    wal_backlog_rows: int = 0
    pending_rows: int = 0
    pending_bytes: int = 0
    dropped_rows: int = 0
    commits: int = 0
    readings_acknowledged: int = 0
    storage_error: str | None = None
    updated_at: datetime | None = None
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    output_figures: Callable[[], dict[str, dict[str, Any]]] | None = None
    """Set by the live outputs: their queue drops and delivery state, for the status file."""
