"""The simulated site: one load curve and one weather curve that every device model shares.

Each family's simulator derives its values from these, so the demo is consistent across devices:
the Janitza on the incomer, the smart meter and the UPS all see the same morning and evening
peaks, and the heat pumps' temperatures follow the same outdoor curve.

Both curves are sums of sinusoids (a weekly load profile reduced to its Fourier series, a seasonal
term, and seeded "noise" sinusoids of incommensurate periods). That makes them smooth and
continuous in time, deterministic for (instant, seed), cheap to evaluate at any instant (no state,
no integration loop), and gives the exact integral in closed form — so energy counters are the
true integral of the power a model reports and can only grow.

Local time (peaks at 07:30 and 19:30, weekends) uses the site zone's *standard* offset: a closed
form cannot follow DST jumps, and a one-hour shift of the summer peaks is harmless for a simulator.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

if TYPE_CHECKING:
    from energy_pipeline.config import Config

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
"""Counters integrate from here: a simulated device's energy registers read 0 Wh at EPOCH."""

SITE_MEAN_W = 30_000.0
"""The site's average consumption; models of smaller consumers scale `site_load_w` down."""

_DAY = 86_400.0
_WEEK = 7 * _DAY
_YEAR = 365.2425 * _DAY
_EPOCH_S = EPOCH.timestamp()
# 2020-01-06 was a Monday: the weekly profile's phase origin (in local standard time).
_MONDAY_S = datetime(2020, 1, 6, tzinfo=UTC).timestamp() - _EPOCH_S
# Coldest around 20 January, the heating share of the load peaks with it.
_WINTER_S = datetime(2020, 1, 20, tzinfo=UTC).timestamp() - _EPOCH_S
_PROFILE_STEP_S = 300.0
_PROFILE_HARMONICS = 168  # shortest period one hour: smooth, and keeps the morning ramp sharp


def stable_seed(*parts: str) -> int:
    """A seed from names (site name, device id) that is the same in every process and run."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class Curve:
    """f(t) = mean + sum(amp * cos(omega * t + phase)), t in seconds since EPOCH.

    `integral(t)` is the exact integral of f from EPOCH to t. Both reduce each instant's terms
    with a row-wise sum (not a matrix product, whose BLAS kernel may round differently with the
    number of rows), so an instant's value is bit-identical alone or in a day's array.
    """

    mean: float
    amp: np.ndarray
    omega: np.ndarray
    phase: np.ndarray

    def value(self, t: float | np.ndarray) -> float | np.ndarray:
        t_arr = np.asarray(t, dtype=np.float64)
        angles = np.multiply.outer(t_arr, self.omega) + self.phase
        out = self.mean + (np.cos(angles) * self.amp).sum(axis=-1)
        return float(out) if out.ndim == 0 else out

    def integral(self, t: float | np.ndarray) -> float | np.ndarray:
        t_arr = np.asarray(t, dtype=np.float64)
        weights = self.amp / self.omega
        angles = np.multiply.outer(t_arr, self.omega) + self.phase
        out = self.mean * t_arr + ((np.sin(angles) - np.sin(self.phase)) * weights).sum(axis=-1)
        return float(out) if out.ndim == 0 else out

    def scaled(self, factor: float) -> Curve:
        return Curve(self.mean * factor, self.amp * factor, self.omega, self.phase)


def _seeded_sinusoids(
    rng: np.random.Generator, count: int, min_period_s: float, max_period_s: float, total: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` sinusoids with log-uniform periods; amplitudes sum to `total`, slower ones larger."""
    periods = np.exp(rng.uniform(math.log(min_period_s), math.log(max_period_s), count))
    weights = (periods / min_period_s) ** 0.35 * rng.uniform(0.5, 1.0, count)
    amps = total * weights / weights.sum()
    return amps, 2 * math.pi / periods, rng.uniform(0, 2 * math.pi, count)


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A Gaussian bump around `centre` o'clock that wraps around midnight."""
    d = (hours - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _plateau(hours: np.ndarray, start: float, end: float, edge: float = 0.6) -> np.ndarray:
    rise = 1.0 / (1.0 + np.exp(-(hours - start) / edge))
    fall = 1.0 / (1.0 + np.exp((hours - end) / edge))
    return rise * fall


def _weekly_profile(t_local: np.ndarray) -> np.ndarray:
    """Relative load over one week from Monday 00:00 local: night base, peaks, office hours."""
    day = (t_local // _DAY).astype(int)
    hours = (t_local % _DAY) / 3600.0
    weekday = (
        0.30
        + 0.28 * _bump(hours, 7.5, 1.1)
        + 0.38 * _plateau(hours, 8.0, 17.0)
        + 0.06 * _bump(hours, 12.5, 0.7)
        + 0.32 * _bump(hours, 19.5, 1.7)
    )
    weekend = (
        0.30
        + 0.16 * _bump(hours, 9.5, 1.5)
        + 0.10 * _plateau(hours, 10.0, 16.5)
        + 0.30 * _bump(hours, 19.0, 2.0)
    )
    return np.where(day >= 5, weekend, weekday)


def standard_offset_s(tz: str | tzinfo | None) -> float:
    """The zone's standard (winter, north) offset from UTC in seconds: the curves' local time."""
    if tz is None:
        return 0.0
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    offsets = [zone.utcoffset(datetime(2021, m, 15)) for m in (1, 7)]
    return min(o.total_seconds() for o in offsets if o is not None)


@cache
def _load_curve(seed: int, offset_s: float) -> Curve:
    """Site load in W: weekly Fourier profile + winter surplus + seeded noise, mean SITE_MEAN_W."""
    t_local = np.arange(0.0, _WEEK, _PROFILE_STEP_S)
    profile = _weekly_profile(t_local)
    coef = np.fft.rfft(profile) / profile.size
    k = np.arange(1, _PROFILE_HARMONICS + 1)
    mean = float(coef[0].real)
    amps = [2 * np.abs(coef[k])]
    omegas = [2 * math.pi * k / _WEEK]
    # local time = t + offset; the week starts at Monday 00:00 local.
    phases = [np.angle(coef[k]) + omegas[0] * (offset_s - _MONDAY_S)]
    amps.append(np.array([0.08 * mean]))
    omegas.append(np.array([2 * math.pi / _YEAR]))
    phases.append(np.array([-2 * math.pi * _WINTER_S / _YEAR]))
    rng = np.random.default_rng([seed, 1])
    noise = _seeded_sinusoids(rng, 18, 240.0, 8 * 3600.0, 0.12 * mean)
    for part, values in zip((amps, omegas, phases), noise, strict=True):
        part.append(values)
    curve = Curve(mean, np.concatenate(amps), np.concatenate(omegas), np.concatenate(phases))
    return curve.scaled(SITE_MEAN_W / mean)


@cache
def _temperature_curve(seed: int, offset_s: float) -> Curve:
    """Outdoor air in °C: 10 °C mean, ±9 °C over the year, ±4 °C over the day, weather fronts."""
    daily = 2 * math.pi / _DAY
    amps = [np.array([9.0, 4.0, 0.8])]
    omegas = [np.array([2 * math.pi / _YEAR, daily, 2 * daily])]
    # Warmest at 15:00 local (the second harmonic sharpens the dawn minimum).
    warmest = 15 * 3600.0 - offset_s
    phases = [
        np.array(
            [
                math.pi - 2 * math.pi * _WINTER_S / _YEAR,
                -daily * warmest,
                -2 * daily * warmest + math.pi / 2,
            ]
        )
    ]
    rng = np.random.default_rng([seed, 2])
    for total, low, high, count in ((3.5, 1.5 * _DAY, 8 * _DAY, 6), (0.5, 1200.0, 3 * 3600.0, 6)):
        noise = _seeded_sinusoids(rng, count, low, high, total)
        for part, values in zip((amps, omegas, phases), noise, strict=True):
            part.append(values)
    return Curve(10.0, np.concatenate(amps), np.concatenate(omegas), np.concatenate(phases))


@cache
def noise_curve(seed: int, min_period_s: float, max_period_s: float, total: float) -> Curve:
    """Zero-mean smooth noise (eight seeded sinusoids) whose amplitude never exceeds `total`."""
    rng = np.random.default_rng([seed, 3])
    amps, omegas, phases = _seeded_sinusoids(rng, 8, min_period_s, max_period_s, total)
    return Curve(0.0, amps, omegas, phases)


def seconds_since_epoch(ts: datetime) -> float:
    if ts.tzinfo is None:
        raise ValueError(f"expected an aware datetime (UTC), got naive {ts.isoformat()}")
    return ts.timestamp() - _EPOCH_S


def load_curve(seed: int, tz: str | tzinfo | None = None) -> Curve:
    """The site load curve in W (t in seconds since EPOCH), for vectorised use."""
    return _load_curve(seed, standard_offset_s(tz))


def temperature_curve(seed: int, tz: str | tzinfo | None = None) -> Curve:
    return _temperature_curve(seed, standard_offset_s(tz))


def site_load_w(ts: datetime, seed: int, tz: str | tzinfo | None = None) -> float:
    """The whole site's consumption in W at `ts`; `tz` is the site zone (default UTC)."""
    return float(load_curve(seed, tz).value(seconds_since_epoch(ts)))


def site_energy_wh(ts: datetime, seed: int, tz: str | tzinfo | None = None) -> float:
    """The exact integral of `site_load_w` from EPOCH to `ts`, in Wh (grows with ts)."""
    return float(load_curve(seed, tz).integral(seconds_since_epoch(ts))) / 3600.0


def outdoor_temp_c(ts: datetime, seed: int, tz: str | tzinfo | None = None) -> float:
    """Outdoor air temperature at the site in °C: seasonal and daily cycles plus weather."""
    return float(temperature_curve(seed, tz).value(seconds_since_epoch(ts)))


@dataclass(frozen=True, slots=True)
class SiteWeather:
    """The site curves bound to one config's seed and zone: what device models hold on to."""

    seed: int
    tz: str

    @classmethod
    def of(cls, config: Config) -> SiteWeather:
        """Seeded by the site name, so every family's model of one site sees the same curves."""
        return cls(stable_seed(config.site.name), config.site.timezone)

    def load_w(self, ts: datetime) -> float:
        return site_load_w(ts, self.seed, self.tz)

    def energy_wh(self, ts: datetime) -> float:
        return site_energy_wh(ts, self.seed, self.tz)

    def outdoor_temp_c(self, ts: datetime) -> float:
        return outdoor_temp_c(ts, self.seed, self.tz)
