"""The shared site curves: realistic shape, deterministic, continuous, exact energy integral."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from energy_pipeline.simulators import site

TZ = "Europe/Berlin"
# A Wednesday and the Sunday after it, in winter (standard time: local = UTC + 1 h).
WEDNESDAY = datetime(2026, 1, 14, tzinfo=UTC)
SUNDAY = datetime(2026, 1, 18, tzinfo=UTC)


def at(day: datetime, local_hour: float) -> datetime:
    return day + timedelta(hours=local_hour - 1)


def test_same_instant_and_seed_give_the_same_values_and_seeds_differ() -> None:
    ts = datetime(2026, 3, 2, 10, 17, 3, 250_000, tzinfo=UTC)
    assert site.site_load_w(ts, 7, TZ) == site.site_load_w(ts, 7, TZ)
    assert site.outdoor_temp_c(ts, 7, TZ) == site.outdoor_temp_c(ts, 7, TZ)
    assert site.site_load_w(ts, 7, TZ) != site.site_load_w(ts, 8, TZ)
    assert site.stable_seed("plant-a") == site.stable_seed("plant-a") != site.stable_seed("b")


def test_daily_shape_has_night_base_morning_and_evening_peaks() -> None:
    load = {h: site.site_load_w(at(WEDNESDAY, h), 1, TZ) for h in (3, 7.5, 11, 19.5, 23.5)}
    assert load[7.5] > 1.6 * load[3]
    assert load[19.5] > 1.4 * load[3]
    assert load[11] > 1.6 * load[3]
    assert load[23.5] < 0.7 * load[19.5]
    assert 8_000 < load[3] < 30_000


def test_weekend_office_hours_are_quieter_than_weekdays() -> None:
    hours = np.arange(9, 17, 0.25)
    weekday = np.mean([site.site_load_w(at(WEDNESDAY, h), 1, TZ) for h in hours])
    weekend = np.mean([site.site_load_w(at(SUNDAY, h), 1, TZ) for h in hours])
    assert weekend < 0.8 * weekday


@pytest.mark.slow
def test_noise_is_continuous_in_time() -> None:
    curve = site.load_curve(3, TZ)
    t = np.arange(0.0, 86_400.0, 1.0) + site.seconds_since_epoch(WEDNESDAY)
    steps = np.abs(np.diff(curve.value(t)))
    assert steps.max() < 0.004 * site.SITE_MEAN_W
    assert np.std(curve.value(t[::60])) > 0.1 * site.SITE_MEAN_W


def test_load_stays_positive_over_years_and_averages_to_the_site_mean() -> None:
    curve = site.load_curve(11, TZ)
    t = np.arange(0.0, 4 * 365 * 86_400.0, 1_733.0)
    values = curve.value(t)
    assert values.min() > 0.25 * site.SITE_MEAN_W
    assert values.mean() == pytest.approx(site.SITE_MEAN_W, rel=0.01)


def test_energy_is_the_exact_integral_of_power_and_only_grows() -> None:
    start = datetime(2026, 5, 4, 6, tzinfo=UTC)
    seconds = np.arange(0, 3 * 3600 + 1, 1.0)
    t = site.seconds_since_epoch(start) + seconds
    power = site.load_curve(5, TZ).value(t)
    trapezoid_wh = float(np.sum((power[1:] + power[:-1]) / 2)) / 3600.0
    e0 = site.site_energy_wh(start, 5, TZ)
    e1 = site.site_energy_wh(start + timedelta(hours=3), 5, TZ)
    assert e1 - e0 == pytest.approx(trapezoid_wh, rel=1e-6)
    energy = site.load_curve(5, TZ).integral(t)
    assert np.all(np.diff(energy) > 0)
    assert site.site_energy_wh(site.EPOCH, 5, TZ) == 0.0


def test_outdoor_temperature_follows_seasons_and_the_day() -> None:
    january = [site.outdoor_temp_c(at(WEDNESDAY + timedelta(days=d), 15), 1, TZ) for d in range(7)]
    july = [
        site.outdoor_temp_c(at(datetime(2026, 7, 15, tzinfo=UTC) + timedelta(days=d), 15), 1, TZ)
        for d in range(7)
    ]
    assert np.mean(july) > np.mean(january) + 10
    afternoon = np.mean(
        [site.outdoor_temp_c(at(WEDNESDAY, 15) + timedelta(days=d), 1, TZ) for d in range(14)]
    )
    dawn = np.mean(
        [site.outdoor_temp_c(at(WEDNESDAY, 5) + timedelta(days=d), 1, TZ) for d in range(14)]
    )
    assert afternoon > dawn + 4
    curve = site.temperature_curve(1, TZ)
    year = curve.value(np.arange(0.0, 365 * 86_400.0, 600.0))
    assert -25 < year.min() < 0 < 25 < year.max() < 40


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        site.site_load_w(datetime(2026, 1, 1), 1)
