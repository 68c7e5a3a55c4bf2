"""Binding model quantities to profile points: units, state labels, and a plausible default.

A device model speaks in base units (W, Wh, VA, var) and semantic states ("heating", "line");
a profile may want kW or kWh and numeric codes with labels. Points no model knows still get a
plausible, moving value from their kind, unit and range, so any profile can be simulated.
"""

from __future__ import annotations

import numpy as np

from energy_pipeline.profiles.model import Point
from energy_pipeline.simulators.site import SITE_MEAN_W, Curve, noise_curve, stable_seed

Quantities = np.ndarray
"""One quantity at many instants: floats in base units, or semantic states (a str array)
resolved through the point's labels."""

_UNIT_FACTOR = {
    "kW": 1e-3,
    "kWh": 1e-3,
    "kVA": 1e-3,
    "kVAh": 1e-3,
    "kvar": 1e-3,
    "kvarh": 1e-3,
    "MW": 1e-6,
    "MWh": 1e-6,
}

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "off": ("off", "no_demand", "standby", "idle", "stop"),
    "on": ("on", "running"),
    "heating": ("heating", "heat"),
    "hot_water": ("hot_water", "dhw", "water"),
    "running": ("running", "on"),
    "no_request": ("no_request", "idle", "off"),
    "disabled": ("disabled", "off"),
    "not_charging": ("not_charging", "off"),
    "charging": ("charging", "on"),
}
_DEFAULT_CODE = {"off": 0, "on": 1, "running": 1, "not_charging": 0, "charging": 1}


def in_point_unit(value: np.ndarray, point: Point) -> np.ndarray:
    """A base-unit value (W, Wh, ...) in the unit the profile declares (kW, kWh, ...)."""
    return value * _UNIT_FACTOR.get(point.unit or "", 1.0)


def state_code(state: str, point: Point) -> float:
    """The code a state point uses for a semantic state, found through its labels."""
    labels = {code: text.lower() for code, text in point.labels.items()}
    for code, text in labels.items():
        if text == state:
            return float(code)
    for word in _SYNONYMS.get(state, (state,)):
        for code, text in sorted(labels.items()):
            if word in text:
                return float(code)
    return float(_DEFAULT_CODE.get(state, min(labels, default=0)))


def resolve(quantity: Quantities, point: Point) -> np.ndarray:
    """Values in the point's unit, or its codes for states (each distinct state looked up once)."""
    if quantity.dtype.kind in "US":
        states, index = np.unique(quantity, return_inverse=True)
        codes = np.array([state_code(str(s), point) for s in states], dtype=np.float64)
        return codes[index.reshape(quantity.shape)]
    return in_point_unit(np.asarray(quantity, dtype=np.float64), point)


class GenericPoint:
    """A plausible value for a point no model claims, from its kind, unit and min/max."""

    def __init__(self, point: Point, device_seed: int, load: Curve):
        self.point = point
        self._load = load
        self._wobble = noise_curve(stable_seed(str(device_seed), point.name), 60.0, 4 * 3600.0, 1.0)
        unit = point.unit or ""
        self._centre, self._spread, self._follows_load = _typical(point, unit)

    def value(self, t: np.ndarray) -> np.ndarray:
        """The point's value at the instants `t` (seconds since EPOCH)."""
        p = self.point
        if p.kind == "state" or p.data_type == "bool":
            return np.full_like(t, float(min(p.labels, default=0)))
        if p.kind == "counter":
            if (p.unit or "").endswith("h"):
                # An energy counter integrates a consumer drawing 2 % of the site's load.
                energy_wh = np.asarray(self._load.integral(t)) / 3600.0 * 0.02
                return in_point_unit(energy_wh, p)
            return np.maximum(t, 0.0) / 3600.0
        value = self._centre + self._spread * np.asarray(self._wobble.value(t))
        if self._follows_load:
            value = value * (np.asarray(self._load.value(t)) / SITE_MEAN_W)
        return value


def _typical(point: Point, unit: str) -> tuple[float, float, bool]:
    """(centre, spread, scales with the site load) for a unit; the point's range wins."""
    if point.min is not None and point.max is not None:
        return (point.min + point.max) / 2, (point.max - point.min) / 6, False
    table: dict[str, tuple[float, float, bool]] = {
        "V": (230.0, 2.0, False),
        "A": (8.0, 1.0, True),
        "W": (2000.0, 200.0, True),
        "kW": (2.0, 0.2, True),
        "VA": (2200.0, 200.0, True),
        "var": (600.0, 100.0, True),
        "Hz": (50.0, 0.03, False),
        "°C": (21.0, 2.0, False),
        "C": (21.0, 2.0, False),
        "K": (5.0, 1.0, False),
        "%": (50.0, 10.0, False),
        "bar": (1.6, 0.2, False),
    }
    if unit in table:
        return table[unit]
    if point.min is not None:
        base = point.min
    elif point.max is not None:
        base = point.max / 2
    else:
        base = 100.0
    return base, max(abs(base) * 0.05, 1.0), False
