"""What the live outputs read from the running collector: device states, missed ticks, WAL
backlog, free space of the data directory, site VPN tunnels and start time. The collector's own
state object satisfies this protocol; `StandaloneState` stands in where outputs run without one
(tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

OutputFigures = Callable[[], dict[str, dict[str, Any]]]


class DeviceView(Protocol):
    @property
    def state(self) -> str: ...

    @property
    def missed_ticks(self) -> int: ...


class TunnelView(Protocol):
    @property
    def state(self) -> str: ...

    @property
    def up(self) -> bool: ...

    @property
    def bytes_in(self) -> int: ...

    @property
    def bytes_out(self) -> int: ...


class CollectorView(Protocol):
    @property
    def started_at(self) -> datetime: ...

    @property
    def devices(self) -> Mapping[str, DeviceView]: ...

    @property
    def wal_backlog_bytes(self) -> int: ...

    @property
    def wal_backlog_rows(self) -> int: ...

    @property
    def disk_free_bytes(self) -> int | None: ...

    @property
    def disk_total_bytes(self) -> int | None: ...

    @property
    def vpn(self) -> Mapping[str, TunnelView]: ...

    output_figures: OutputFigures | None
    """Set by the live outputs, read by the collector's status file."""


@dataclass
class StandaloneDevice:
    state: str = "starting"
    missed_ticks: int = 0


@dataclass
class StandaloneState:
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    devices: dict[str, StandaloneDevice] = field(default_factory=dict)
    wal_backlog_bytes: int = 0
    wal_backlog_rows: int = 0
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    vpn: dict[str, TunnelView] = field(default_factory=dict)
    output_figures: OutputFigures | None = None
