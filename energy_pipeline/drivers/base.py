"""The driver interface and the typed errors every driver raises.

A driver turns one device into `Sample`s. It connects lazily, reconnects after a failure on the
next `read()`, and never writes to the device. Retrying across ticks and backing off is the
collector's job; a driver's own `retries` only cover one poll.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from energy_pipeline.readings import Sample


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


class Driver(ABC):
    """One device. Implementations keep per-poll work small: plans and names are pre-built."""

    def __init__(self, device_id: str):
        self.device_id = device_id

    @abstractmethod
    async def read(self) -> Sample:
        """One poll: connect if needed, read everything, decode. Raises DeviceError."""

    async def probe(self) -> None:
        """The cheapest full round trip to the device, for health checks; default one read()."""
        await self.read()

    @abstractmethod
    async def close(self) -> None:
        """Release the connection; a later read() reconnects."""
