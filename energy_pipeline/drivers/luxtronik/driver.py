"""One Luxtronik controller: a poll is one `Connection.fetch`, retried, then decoded.

Each try opens its own connection and closes it right after (the controller serves one client
at a time), so a failed try leaves nothing half-open for the next.
"""

from __future__ import annotations

import logging

from energy_pipeline.drivers.base import DeviceError, Driver
from energy_pipeline.drivers.luxtronik.client import Connection
from energy_pipeline.drivers.luxtronik.decode import decode
from energy_pipeline.readings import Sample

log = logging.getLogger(__name__)


class LuxtronikDriver(Driver):
    def __init__(
        self, device_id: str, host: str, port: int, *, timeout: float, retries: int
    ) -> None:
        super().__init__(device_id, timeout=timeout, retries=retries)
        self.connection = Connection(device_id, host, port, timeout)

    @property
    def bus_key(self) -> None:
        return None

    async def read(self) -> Sample:
        last: DeviceError | None = None
        for attempt in range(1, self.retries + 2):
            self.last_attempts = attempt
            try:
                return decode(*await self.connection.fetch())
            except DeviceError as exc:
                last = exc
                log.debug("%s: attempt %d failed: %s", self.device_id, attempt, exc)
            finally:
                await self.close()
        assert last is not None
        raise last

    async def close(self) -> None:
        await self.connection.close()
