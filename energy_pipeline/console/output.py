"""How console verbs print: JSON documents, device errors without secrets, values with units."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from energy_pipeline.catalog import MetricMeaning
from energy_pipeline.drivers.base import DeviceError, Driver
from energy_pipeline.drivers.modbus.driver import ModbusDriver
from energy_pipeline.logs import redact
from energy_pipeline.profiles.model import Point, Profile


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def error_text(exc: BaseException) -> str:
    if isinstance(exc, DeviceError):
        return redact(str(exc))
    return redact(f"{type(exc).__name__}: {exc}")


def profile_of(driver: Driver | BaseException | None) -> Profile | None:
    """The register map behind a driver's values (Modbus devices have one)."""
    return driver.profile if isinstance(driver, ModbusDriver) else None


def value_text(value: float, point: MetricMeaning | Point | None) -> str:
    """A value as text, with its state label, else its unit, when its meaning gives one."""
    text = f"{value:.6g}" if math.isfinite(value) else str(value)
    if point is None:
        return text
    label = point.labels.get(int(value)) if point.labels and value.is_integer() else None
    if label:
        return f"{text} ({label})"
    return f"{text} {point.unit}" if point.unit else text
