"""Driver families by config `driver` name. Each family builds all its devices at once, so
devices that share a serial bus can share one connection."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from energy_pipeline.config import Config, Device
from energy_pipeline.drivers import echonet, luxtronik, modbus
from energy_pipeline.drivers.base import Driver, StateStores

FamilyBuilder = Callable[[Sequence[Device], Config, StateStores], list[Driver]]

FAMILIES: dict[str, FamilyBuilder] = {
    "modbus": modbus.build,
    "luxtronik": luxtronik.build,
    "echonet_broute": echonet.build,
}


def build_drivers(
    config: Config, devices: Sequence[Device] | None = None, *, state: StateStores
) -> dict[str, Driver]:
    """Drivers by device id, in config order, for `devices` (default: all of the config)."""
    chosen = list(config.devices if devices is None else devices)
    by_family: dict[str, list[Device]] = {}
    for dev in chosen:
        by_family.setdefault(dev.driver, []).append(dev)
    built: dict[str, Driver] = {}
    for family, devs in by_family.items():
        for driver in FAMILIES[family](devs, config, state):
            built[driver.device_id] = driver
    return {dev.id: built[dev.id] for dev in chosen}
