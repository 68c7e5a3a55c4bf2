"""The drivers a one-shot verb uses: the collector's drivers and state files, built so that a
family that cannot be built never hides the other devices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from energy_pipeline.config import Config, Device
from energy_pipeline.drivers.base import DeviceError, Driver
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


class Unreachable(DeviceError):
    """The device's site tunnel is down: it is reported, not asked."""

    kind = "vpn_down"


def build_reachable(
    config: Config, devices: Sequence[Device], unreachable: Mapping[str, str] | None
) -> dict[str, Driver | BaseException]:
    """`build_each` for the devices that can be reached; the others (id -> why, from the
    site VPN) get their reason in place of a driver."""
    unreachable = unreachable or {}
    drivers = build_each(config, [d for d in devices if d.id not in unreachable])
    for dev_id, why in unreachable.items():
        drivers[dev_id] = Unreachable(dev_id, why.removeprefix(f"{dev_id}: "))
    return drivers


async def close_all(drivers: dict[str, Driver | BaseException]) -> None:
    """After every device is done: devices on one bus share its connection."""
    for driver in drivers.values():
        if isinstance(driver, Driver):
            await driver.close()
