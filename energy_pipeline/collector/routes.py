"""What stands between the collector and a device's network: a site VPN tunnel, for now.

The collector does not run tunnels itself; it is handed an object that brings them up before
the first poll, says before each poll whether a device's route is down (the device is then
`vpn_down` and not asked), and takes them down after the last poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from energy_pipeline.collector.state import CollectorState
from energy_pipeline.config import Config


class Routes(Protocol):
    async def start(self) -> None: ...

    def blocked(self, device_id: str) -> str | None:
        """Why the device cannot be reached now, or None when its route is up."""
        ...

    async def stop(self) -> None: ...


RoutesFactory = Callable[[Config, CollectorState], Routes | None]
