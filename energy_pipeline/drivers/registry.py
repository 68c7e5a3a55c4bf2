"""Driver families by config `driver` name. Each family builds all its devices at once, so
devices that share a serial bus can share one connection.

A family's modules are imported only when the config has one of its devices: whatever a
collector loads stays resident for as long as it runs, and a Modbus-only site has no use for
the ECHONET or Luxtronik stacks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from energy_pipeline.config import Config, Device
from energy_pipeline.drivers.base import Driver, StateStores

FamilyBuilder = Callable[[Sequence[Device], Config, StateStores], list[Driver]]


def _modbus(devices: Sequence[Device], config: Config, state: StateStores) -> list[Driver]:
    from energy_pipeline.drivers import modbus

    return modbus.build(devices, config, state)


def _luxtronik(devices: Sequence[Device], config: Config, state: StateStores) -> list[Driver]:
    from energy_pipeline.drivers import luxtronik

    return luxtronik.build(devices, config, state)


def _echonet(devices: Sequence[Device], config: Config, state: StateStores) -> list[Driver]:
    from energy_pipeline.drivers import echonet

    return echonet.build(devices, config, state)


FAMILIES: dict[str, FamilyBuilder] = {
    "modbus": _modbus,
    "luxtronik": _luxtronik,
    "echonet_broute": _echonet,
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
