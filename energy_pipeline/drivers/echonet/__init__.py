"""ECHONET Lite B-route smart meters through a Wi-SUN dongle (driver name `echonet_broute`).

`frame` is the ECHONET Lite codec, `meter` the class 0x0288 property decoding, `skstack` the
dongle dialogue, `driver` the I/O edge that ties them to the collector.

The room may import `drivers.base`, `drivers.serial_lock`, config, readings and the property
name table in `profiles.echonet_names`. The meter's saved state (the PAN it joined, the
half-hours it already fetched) arrives as a `StateStore` from whoever builds the driver.
"""

from __future__ import annotations

from collections.abc import Sequence

from energy_pipeline.config import Config, Device, EchonetDevice
from energy_pipeline.drivers.base import Driver, StateStores
from energy_pipeline.drivers.echonet.driver import STATE_KEY, BRouteMeter


def build(devices: Sequence[Device], config: Config, state: StateStores) -> list[Driver]:
    """One driver per meter, each with its own state store."""
    drivers: list[Driver] = []
    for dev in devices:
        if not isinstance(dev, EchonetDevice):
            raise TypeError(f"{dev.id}: not an echonet_broute device")
        store = state(STATE_KEY.format(device_id=dev.id))
        drivers.append(BRouteMeter(dev, config, state=store))
    return drivers
