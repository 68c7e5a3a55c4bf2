"""Models behind the Modbus simulators: consistent, deterministic, counters that only grow."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from energy_pipeline.simulators import device_model
from energy_pipeline.simulators.modbus import ProfileModel, served_ranges
from energy_pipeline.simulators.site import SiteWeather, outdoor_temp_c
from energy_pipeline_tests.kit.sites import BUILTIN_MODBUS_DEVICES, load_site

T0 = datetime(2026, 1, 14, 6, 0, tzinfo=UTC)  # a winter Wednesday, 07:00 in Berlin


def models(tmp_path: Path) -> dict[str, ProfileModel]:
    config = load_site(
        tmp_path,
        BUILTIN_MODBUS_DEVICES,
    )
    return {d.id: device_model(d, config) for d in config.devices}  # type: ignore[misc]


Site = dict[str, ProfileModel]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """One set of models for the module: models are pure, so tests cannot disturb each other."""
    return models(tmp_path_factory.mktemp("site"))


def instants(start: datetime, seconds: int, step: int) -> list[datetime]:
    return [start + timedelta(seconds=s) for s in range(0, seconds, step)]


def test_three_phase_values_are_consistent(site: Site) -> None:
    m = site["umg509"]
    for ts in instants(T0, 6 * 3600, 1801):
        v = m.values_at(ts)
        total = sum(v[f"power_active_{ph}"] for ph in ("l1", "l2", "l3"))
        assert v["power_active_total"] == pytest.approx(total, rel=1e-5)
        for ph in ("l1", "l2", "l3"):
            p, s, q = (v[f"power_{k}_{ph}"] for k in ("active", "apparent", "reactive"))
            u, i, cos_phi = v[f"voltage_{ph}_n"], v[f"current_{ph}"], v[f"cos_phi_{ph}"]
            assert p == pytest.approx(u * i * cos_phi, rel=1e-4)
            assert s == pytest.approx(math.hypot(p, q), rel=1e-4)
            assert 215 < u < 245 and 0.85 < cos_phi <= 1
        assert v["voltage_l1_l2"] == pytest.approx(math.sqrt(3) * v["voltage_l1_n"], rel=0.02)
        assert v["frequency"] == pytest.approx(50, abs=0.1)
        assert 5_000 < v["power_active_total"] < 80_000


def test_energy_counters_only_grow_and_integrate_the_power(site: Site) -> None:
    m = site["umg509"]
    series = [m.values_at(ts) for ts in instants(T0, 3600 + 1, 15)]
    counters = [n for n in series[0] if n.startswith("energy_")]
    assert len(counters) == 28
    for name in counters:
        values = np.array([v[name] for v in series])
        assert np.all(np.diff(values) >= 0), name
    power = np.array([v["power_active_total"] for v in series])
    integral_wh = float(np.sum((power[1:] + power[:-1]) / 2) * 15 / 3600)
    delta_wh = series[-1]["energy_active_import_total"] - series[0]["energy_active_import_total"]
    # float32 Wh registers step by 128 Wh at this size (DESIGN: "Time").
    assert delta_wh == pytest.approx(integral_wh, abs=300)
    assert delta_wh > 10_000


def test_models_are_deterministic_across_instances(site: Site, tmp_path: Path) -> None:
    a, b = site, models(tmp_path)
    ts = T0 + timedelta(hours=5, seconds=17)
    for device_id in a:
        assert a[device_id].values_at(ts) == b[device_id].values_at(ts)
        assert a[device_id].words_at(ts) == b[device_id].words_at(ts)
    assert a["umg509"].values_at(ts) != a["umg509"].values_at(ts + timedelta(seconds=1))


@pytest.mark.slow
def test_ups_runs_on_battery_sometimes_and_recharges(site: Site) -> None:
    m = site["ups1"]
    day = [m.values_at(ts) for ts in instants(T0, 86_400, 30)]
    status = np.array([v["status"] for v in day])
    level = np.array([v["battery_level"] for v in day])
    on_battery = status == 3
    assert set(status) == {3, 4}
    assert 0.005 < on_battery.mean() < 0.2
    assert level[on_battery].min() < 97
    assert np.all(np.array([v["input_voltage"] for v in day])[on_battery] == 0)
    assert np.all(np.array([v["battery_current"] for v in day])[on_battery] < 0)
    # Each outage drains the battery while it lasts; mains then recharges it to full.
    starts = np.flatnonzero(~on_battery[:-1] & on_battery[1:]) + 1
    ends = np.flatnonzero(on_battery[:-1] & ~on_battery[1:])
    assert ends.size >= 5
    for end in ends:
        start = starts[starts <= end].max()
        assert level[end] <= level[start] and level[end] < 100
        following = starts[starts > end]
        stop = following.min() if following.size else level.size
        recharge = level[end + 1 : stop]
        full = int(np.argmax(recharge == 100))
        assert recharge[full] == 100, "full again before the next outage"
        assert np.all(np.diff(recharge[: full + 1]) >= 0)
    load = np.array([v["load_power"] for v in day])
    assert load.max() > 1.5 * load.min()
    percent = np.array([v["load_percent"] for v in day])
    assert np.all(np.abs(percent - load / 10) <= 0.55)


@pytest.mark.slow
def test_heat_pump_cycles_and_follows_the_outdoor_curve(site: Site, tmp_path: Path) -> None:
    m = site["hp"]
    weather = SiteWeather.of(load_site(tmp_path / "w", "  []\n"))
    times = instants(T0 + timedelta(hours=3), 6 * 3600, 10)
    series = [m.values_at(ts) for ts in times]
    running = np.array([v["compressor_running"] for v in series])
    assert 0.1 < running.mean() < 0.99
    assert np.count_nonzero(np.diff(running)) >= 4
    for ts, v in zip(times[::97], series[::97], strict=True):
        assert v["outdoor_temperature"] == pytest.approx(
            outdoor_temp_c(ts, weather.seed, weather.tz), abs=0.051
        )
    on = [v for v in series if v["compressor_running"] == 1]
    assert all(v["flow_temperature"] >= v["return_temperature"] for v in on)
    assert np.mean([v["flow_temperature"] - v["return_temperature"] for v in on]) > 2
    assert all(v["electric_power"] > 500 for v in on)
    assert {v["operating_mode"] for v in series} <= {0, 1, 2}
    energy = np.array([v["electric_energy_total"] for v in series])
    assert np.all(np.diff(energy) >= 0)
    power_kwh = sum(v["electric_power"] for v in series) * 10 / 3.6e6
    assert energy[-1] - energy[0] == pytest.approx(power_kwh, abs=0.3)


def test_heat_pump_names_of_other_profiles_bind_to_the_same_model(site: Site) -> None:
    m = site["lux"]
    v = m.values_at(T0 + timedelta(hours=2))
    assert v["electric_power"] < 5  # kW in this profile
    assert v["electric_energy_total"] == pytest.approx(
        v["electric_energy_heating"] + v["electric_energy_hot_water"], abs=0.15
    )
    assert v["thermal_energy_total"] > v["electric_energy_total"] > 0
    assert v["hot_water_temperature_target"] == 50
    assert v["operation_mode"] in (0, 1, 5)


def test_pv1800_produces_by_day_only(site: Site) -> None:
    m = site["pv"]
    noon = m.values_at(datetime(2026, 6, 10, 11, 0, tzinfo=UTC))
    night = m.values_at(datetime(2026, 6, 10, 23, 0, tzinfo=UTC))
    assert noon["pv_power"] > 300 and noon["mppt_state"] == 1
    assert night["pv_power"] == 0 and night["pv_voltage"] == 0
    assert night["grid_power"] == pytest.approx(night["load_power"], abs=1)
    ranges = served_ranges(m.profile)["holding"]
    assert (10101, 10124) in ranges and (25201, 25279) in ranges
    assert not any(start <= 20050 <= end for start, end in ranges)


def test_unknown_profile_gets_plausible_values_within_its_ranges(tmp_path: Path) -> None:
    (tmp_path / "meter.yaml").write_text(
        """
manufacturer: Acme
model: Flow meter
points:
  - {name: flow_rate, address: 0, data_type: float32, unit: m3/h, min: 0, max: 40}
  - {name: line_voltage, address: 2, scale: 0.1, unit: V}
  - {name: heat_energy, address: 10, data_type: uint32, unit: kWh, kind: counter}
  - {name: run_hours, address: 12, data_type: uint32, kind: counter}
  - {name: valve, address: 14, kind: state, labels: {3: closed, 4: open}}
  - {name: tripped, address: 5, register_type: coil, data_type: bool, kind: state}
"""
    )
    config = load_site(
        tmp_path,
        """  - {id: acme, driver: modbus, profile: meter.yaml,
     connection: {transport: tcp, host: 127.0.0.1, port: 15030}}
""",
    )
    m = device_model(config.devices[0], config)
    series = [m.values_at(ts) for ts in instants(T0, 12 * 3600, 600)]
    assert all(0 <= v["flow_rate"] <= 40 for v in series)
    assert len({v["flow_rate"] for v in series}) > 10
    assert all(220 < v["line_voltage"] < 240 for v in series)
    for name in ("heat_energy", "run_hours"):
        values = np.array([v[name] for v in series])
        assert np.all(np.diff(values) >= 0) and values[-1] > values[0]
    assert {v["valve"] for v in series} == {3}
    assert {v["tripped"] for v in series} == {0}


def test_instants_before_the_epoch_are_refused_for_cycling_models(site: Site) -> None:
    with pytest.raises(ValueError, match="EPOCH"):
        site["hp"].values_at(datetime(2019, 6, 1, tzinfo=UTC))


def test_heat_pump_charges_hot_water_twice_a_day(site: Site) -> None:
    m = site["hp"]
    day = instants(datetime(2026, 1, 14, 0, 0, tzinfo=UTC), 86_400, 60)
    series = [m.values_at(ts) for ts in day]
    hot_water_hours = {
        ts.hour + 1 for ts, v in zip(day, series, strict=True) if v["operating_mode"] == 2
    }  # local = UTC + 1 h in January
    assert {5, 17} <= hot_water_hours <= {5, 6, 17, 18}
    temps = np.array([v["hot_water_temperature"] for v in series])
    charging = np.array([v["operating_mode"] == 2 for v in series])
    assert temps[charging].max() > temps[~charging][:240].min() + 3
    cooling = temps[np.flatnonzero(charging)[-1] + 1 :]
    assert np.all(np.diff(cooling) <= 0) and cooling[-1] < cooling[0]
