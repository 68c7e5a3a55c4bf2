"""Luxtronik 2.x heat-pump controllers (Novelan, Alpha Innotec) over their TCP config port.

`protocol` is the frame codec, `decode` turns item vectors into a Sample, `client` is the TCP
I/O edge and `driver` the `Driver` that retries and decodes.

The room may import `drivers.base`, config, readings and the item name table in
`profiles.luxtronik_names`, which the catalog reads too.
"""

from __future__ import annotations

from collections.abc import Sequence

from energy_pipeline.config import Config, Device, LuxtronikDevice
from energy_pipeline.drivers.base import Driver, StateStores
from energy_pipeline.drivers.luxtronik.driver import LuxtronikDriver


def build(devices: Sequence[Device], config: Config, state: StateStores) -> list[Driver]:
    """One driver per device; each opens its own short connection per poll (no saved state)."""
    drivers: list[Driver] = []
    for dev in devices:
        if not isinstance(dev, LuxtronikDevice):
            raise TypeError(f"{dev.id}: not a luxtronik device")
        conn = dev.connection
        drivers.append(
            LuxtronikDriver(
                dev.id, conn.host, conn.port, timeout=conn.timeout, retries=conn.retries
            )
        )
    return drivers
