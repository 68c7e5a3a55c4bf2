"""The drivers a one-shot verb uses: the collector's drivers and state files, built so that a
family that cannot be built never hides the other devices."""

from __future__ import annotations

from collections.abc import Sequence

from energy_pipeline.config import Config, Device
from energy_pipeline.drivers.base import Driver
from energy_pipeline.drivers.registry import build_drivers
from energy_pipeline.lake.device_state import StateFiles


def select(config: Config, device_id: str | None) -> list[Device]:
    return [config.device(device_id)] if device_id else list(config.devices)


def build_each(config: Config, devices: Sequence[Device]) -> dict[str, Driver | BaseException]:
    """Drivers by id; if a family cannot be built, the other devices still get theirs."""
    state = StateFiles(config.data_dir)
    try:
        return dict(build_drivers(config, devices, state=state))
    except Exception:  # one family failing must not hide the others: build them one by one
        out: dict[str, Driver | BaseException] = {}
        for dev in devices:
            try:
                out[dev.id] = build_drivers(config, [dev], state=state)[dev.id]
            except Exception as exc:
                out[dev.id] = exc
        return out


async def close_all(drivers: dict[str, Driver | BaseException]) -> None:
    """After every device is done: devices on one bus share its connection."""
    for driver in drivers.values():
        if isinstance(driver, Driver):
            await driver.close()
