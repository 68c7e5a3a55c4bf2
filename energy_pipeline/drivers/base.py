"""The driver interface and the typed errors every driver raises.

A driver turns one device into `Sample`s. It connects lazily, reconnects after a failure on the
next `read()`, and never writes to the device. Retrying across ticks and backing off is the
collector's job; a driver's own `retries` only cover one poll.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from energy_pipeline.readings import Sample

BusKey = tuple[str, ...]
"""Names one physical bus, e.g. `("serial", "/dev/ttyUSB0")`: devices with equal keys take turns."""


class DeviceError(Exception):
    """A device failed to answer usefully. `kind` groups errors for metrics and state logs."""

    kind = "error"

    def __init__(self, device_id: str, message: str, *, where: str | None = None):
        self.device_id = device_id
        self.where = where
        text = f"{device_id}: {message}" + (f" ({where})" if where else "")
        super().__init__(text)


class DeviceTimeout(DeviceError):
    kind = "timeout"


class DeviceConnectionError(DeviceError):
    """Refused, reset, unreachable, serial port missing."""

    kind = "connection"


class DeviceExceptionReply(DeviceError):
    """The device answered with a protocol-level refusal (Modbus exception, ECHONET SNA)."""

    kind = "exception_reply"

    def __init__(self, device_id: str, message: str, *, code: int, where: str | None = None):
        self.code = code
        super().__init__(device_id, message, where=where)


class DeviceProtocolError(DeviceError):
    """Garbage, truncated or inconsistent frames."""

    kind = "protocol"


class PortBusyError(DeviceError):
    """A serial port held by another process (usually the running collector)."""

    kind = "busy"


class StateStore(Protocol):
    """What a driver keeps across restarts (a scan result, counter wraps), as one JSON-able dict.

    Drivers never choose where it lives: whoever builds them (the collector, a console verb)
    passes the stores in, so a driver never writes into the data folder itself.
    """

    def load(self) -> dict[str, Any] | None:
        """The saved dict, None when nothing was saved; raises OSError/ValueError if unreadable."""

    def save(self, doc: dict[str, Any]) -> None:
        """Replace the saved dict; a crash leaves the old one or the new one."""


StateStores = Callable[[str], StateStore]
"""The store for a key such as `echonet-<device id>`."""


class Driver(ABC):
    """One device. Implementations keep per-poll work small: plans and names are pre-built.

    The members below are what the collector schedules by; every driver sets them.
    """

    def __init__(self, device_id: str, *, timeout: float, retries: int):
        self.device_id = device_id
        self.timeout = timeout
        """Seconds one request may take."""
        self.retries = retries
        """Extra tries within one `read()` after a failed one."""
        self.last_attempts = 0
        """Tries the last `read()` needed (1 when the first one worked)."""

    @property
    def read_budget(self) -> float:
        """The longest one `read()` may take: every try at its timeout, plus a margin."""
        return self.timeout * (self.retries + 1) + 1.0

    @property
    @abstractmethod
    def bus_key(self) -> BusKey | None:
        """The serial bus (or shared TCP gateway) this device takes turns on; None if its own."""

    @abstractmethod
    async def read(self) -> Sample:
        """One poll: connect if needed, read everything, decode. Raises DeviceError."""

    async def probe(self) -> None:
        """The cheapest full round trip to the device, for health checks; default one read()."""
        await self.read()

    @abstractmethod
    async def close(self) -> None:
        """Release the connection; a later read() reconnects."""
