"""Simulated devices for the demo, the tests and `simulate-history`.

Each family module (`modbus`, `luxtronik`, `echonet`) exposes `device_model(device, config)` —
a pure, deterministic model of the device's engineering values at any instant — and
`start(devices, config, stack)`, which serves those models over the device's real protocol on
loopback. This module dispatches by `device.driver`, importing a family only when it is used.

The floor beside `live`, above drivers: it may import drivers (their codecs, so a simulated
device speaks its protocol byte for byte), lake (`history` lands through the collector's own
sealing writer), profiles, config and readings. Only the face (cli, demo) imports it.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Sequence
from datetime import datetime
from types import ModuleType
from typing import Protocol, runtime_checkable

import numpy as np

from energy_pipeline.config import Config, Device


class SimulatorError(RuntimeError):
    """A simulator could not start (port in use, a path it must not replace, no such family)."""


class DeviceModel(Protocol):
    """A device's engineering values (metric name -> value) at an aware UTC instant.

    Deterministic for the instant; counters integrate power from `site.EPOCH` and never fall.
    """

    def values_at(self, ts: datetime) -> dict[str, float]: ...


@runtime_checkable
class ArrayDeviceModel(DeviceModel, Protocol):
    """A model that also computes many instants in one array call (what `simulate-history`
    wants: a day of a Modbus model costs milliseconds instead of seconds).

    `values_between(epoch_s)` returns (names, values of shape instants x names) for Unix
    instants; row i equals `values_at` at that instant, to the bit.
    """

    def values_between(self, epoch_s: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]: ...


_MODULES = {"modbus": "modbus", "luxtronik": "luxtronik", "echonet_broute": "echonet"}


def _family(driver: str) -> ModuleType:
    name = f"{__name__}.{_MODULES.get(driver, driver)}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise SimulatorError(f"no simulator for driver {driver!r} in this build") from None


def device_model(device: Device, config: Config) -> DeviceModel:
    return _family(device.driver).device_model(device, config)


async def start_all(
    config: Config, devices: Sequence[Device] | None, stack: contextlib.AsyncExitStack
) -> list[str]:
    """Serve `devices` (default: all of the config), family by family; one line per endpoint.

    Shutdown is registered on `stack`; returns once every server accepts connections.
    """
    chosen = list(config.devices if devices is None else devices)
    by_family: dict[str, list[Device]] = {}
    for dev in chosen:
        by_family.setdefault(dev.driver, []).append(dev)
    lines: list[str] = []
    for family, devs in by_family.items():
        lines.extend(await _family(family).start(devs, config, stack))
    return lines
