"""Driver families, built from the config. Each family builds all its devices at once, so
devices that share a serial bus can share one connection."""

from __future__ import annotations

from collections.abc import Sequence

from energy_pipeline.config import Config, Device
from energy_pipeline.drivers.base import Driver


def build_drivers(config: Config, devices: Sequence[Device] | None = None) -> dict[str, Driver]:
    """Drivers by device id, in config order, for `devices` (default: all of the config)."""
    chosen = list(config.devices if devices is None else devices)
    by_family: dict[str, list[Device]] = {}
    for dev in chosen:
        by_family.setdefault(dev.driver, []).append(dev)
    built: dict[str, Driver] = {}
    for family, devs in by_family.items():
        if family == "modbus":
            from energy_pipeline.drivers.modbus import build as build_family
        elif family == "luxtronik":
            from energy_pipeline.drivers.luxtronik import build as build_family
        else:
            from energy_pipeline.drivers.echonet import build as build_family
        for driver in build_family(devs, config):
            built[driver.device_id] = driver
    return {dev.id: built[dev.id] for dev in chosen}
