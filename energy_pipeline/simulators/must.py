"""MUST inverters: the EP20 line-interactive UPS and the PV1800 hybrid solar inverter.

EP20: the protected load follows the site's daily shape. Mains fails now and then — in about
half of the hours, for 1 to 7 minutes starting in the hour's first quarter — and the UPS runs on
battery (work state 3, "battery"): the battery level falls with the energy the load draws, then
recharges on mains well before the hour ends. So every hour starts full and the level at any
instant depends only on that hour: deterministic without replaying history.

PV1800: a small off-grid/hybrid system — PV from a clear-sky day shape with passing clouds, the
load a small share of the site's, the inverter covering what the sun can and the grid the rest.
"""

from __future__ import annotations

import math

import numpy as np

from energy_pipeline.simulators.points import Quantities
from energy_pipeline.simulators.site import (
    SITE_MEAN_W,
    SiteWeather,
    load_curve,
    noise_curve,
    stable_seed,
    standard_offset_s,
)

_HOUR = 3600.0


class Ep20Ups:
    RATED_W = 1000.0
    BATTERY_V = 12.0
    BATTERY_WH = 420.0  # 12 V x 35 Ah
    INVERTER_EFFICIENCY = 0.9
    MEAN_LOAD_W = 320.0
    MIN_CHARGE_PCT_PER_S = 0.5 / 60

    def __init__(self, weather: SiteWeather, seed: int):
        self._seed = seed
        self._load = load_curve(weather.seed, weather.tz).scaled(self.MEAN_LOAD_W / SITE_MEAN_W)
        self._grid_noise = noise_curve(seed + 1, 300.0, 4 * _HOUR, 6.0)
        self._temp_noise = noise_curve(seed + 2, 900.0, 6 * _HOUR, 1.0)

    def outage(self, hour: int) -> tuple[float, float] | None:
        """(start, end) in seconds since EPOCH of the mains failure in that hour, if any."""
        rng = np.random.default_rng([self._seed, 20, hour])
        if rng.random() >= 0.5:
            return None
        start = hour * _HOUR + rng.uniform(0, 15 * 60)
        return start, start + rng.uniform(60, 7 * 60)

    def _level(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(state of charge %, on battery, charging) at the instants t."""
        hour = t // _HOUR
        hours, inverse = np.unique(hour, return_inverse=True)
        events = [self.outage(int(h)) or (math.inf, math.inf) for h in hours.tolist()]
        start, end = (
            np.array(column)[inverse.reshape(t.shape)] for column in zip(*events, strict=True)
        )
        struck = np.isfinite(start)
        start_s = np.where(struck, start, t)
        end_s = np.where(struck, end, t)
        base = np.asarray(self._load.integral(start_s))

        def drawn_pct(until: np.ndarray) -> np.ndarray:
            wh = (np.asarray(self._load.integral(until)) - base) / 3600.0
            return 100.0 * wh / (self.INVERTER_EFFICIENCY * self.BATTERY_WH)

        on_battery = (t >= start) & (t < end)
        deficit = drawn_pct(end_s)
        # Charge fast enough to be full two minutes before the hour ends.
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.maximum(
                self.MIN_CHARGE_PCT_PER_S, deficit / ((hour + 1) * _HOUR - 120.0 - end_s)
            )
        recharged = np.minimum(100.0, 100.0 - deficit + rate * (t - end_s))
        after = t >= end
        level = np.where(t < start, 100.0, np.where(on_battery, 100.0 - drawn_pct(t), recharged))
        return level, on_battery, after & (level < 100.0)

    def quantities(self, t: np.ndarray) -> dict[str, Quantities]:
        """Every quantity at the instants `t` (seconds since EPOCH), one array each."""
        soc, on_battery, charging = self._level(t)
        load_w = np.asarray(self._load.value(t))
        apparent = load_w / 0.66
        grid_v = np.where(on_battery, 0.0, 229.0 + np.asarray(self._grid_noise.value(t)))
        battery_v = np.where(
            on_battery,
            11.4 + 1.3 * soc / 100.0 - 0.004 * load_w / 10,
            np.where(charging, 13.7, 13.5),
        )
        battery_a = np.where(
            on_battery,
            -load_w / (self.INVERTER_EFFICIENCY * battery_v),
            np.where(charging, 9.0, 0.3),
        )
        # The AVR keeps the output near 220-230 V whatever the grid does.
        output_v = np.where(on_battery, 220.9, np.minimum(np.maximum(grid_v, 219.0), 231.0))
        avr = np.where(
            grid_v > 240.0,
            "step_down",
            np.where((grid_v > 0) & (grid_v < 215.0), "boost", "bypass"),
        )
        charge_state = np.where(
            soc >= 100.0,
            "float",
            np.where(soc < 90.0, "constant_current", "constant_voltage"),
        )

        def const(value: float | str) -> np.ndarray:
            return np.full(t.shape, value)

        return {
            "machine_type": const(2.0),
            "software_version": const(36402.0),
            "status": np.where(on_battery, "battery", "online"),
            "battery_class": const(self.BATTERY_V),
            "rated_power": const(self.RATED_W),
            "input_voltage": grid_v,
            "input_frequency": np.where(on_battery, 0.0, 50.0),
            "output_voltage": output_v,
            "frequency": const(50.0),
            "load_current": apparent / output_v,
            "load_power": load_w,
            "load_apparent_power": apparent,
            "load_percent": 100.0 * load_w / self.RATED_W,
            "load_state": np.where(load_w < 0.8 * self.RATED_W, "normal", "alarm"),
            "battery_voltage": battery_v,
            "battery_current": battery_a,
            "battery_level": soc,
            "temperature": 29.0
            + 8.0 * load_w / self.RATED_W
            + np.where(on_battery, 4.0, 0.0)
            + np.asarray(self._temp_noise.value(t)),
            "avr_state": avr,
            "buzzer_state": np.where(on_battery, 1.0, 0.0),
            "fault_code": const(0.0),
            "alarm_code": const(0.0),
            "charge_state": charge_state,
            "charging": np.where(charging, "charging", "not_charging"),
            "main_switch": const("on"),
            "delay_type": const(1.0),
        }


class Pv1800:
    RATED_W = 1800.0
    PV_PEAK_W = 1500.0
    MEAN_LOAD_W = 300.0

    def __init__(self, weather: SiteWeather, seed: int):
        self._offset_s = standard_offset_s(weather.tz)
        self._load = load_curve(weather.seed, weather.tz).scaled(self.MEAN_LOAD_W / SITE_MEAN_W)
        self._clouds = noise_curve(stable_seed(str(weather.seed), "clouds"), 600.0, 6 * _HOUR, 1.0)
        self._noise = noise_curve(seed + 1, 60.0, 2 * _HOUR, 1.0)

    def sun(self, t: np.ndarray) -> np.ndarray:
        """Clear-sky fraction of the PV peak: a day arc whose length follows the season."""
        local_h = ((t + self._offset_s) / _HOUR) % 24.0
        day_of_year = (t / 86_400.0) % 365.2425
        day_length = 12.0 + 4.0 * np.cos(2 * math.pi * (day_of_year - 172) / 365.2425)
        x = (local_h - (12.5 - day_length / 2)) / day_length
        arc = np.sin(math.pi * np.clip(x, 0.0, 1.0)) ** 1.5 * (0.65 + 0.35 * day_length / 16.0)
        return np.where((x > 0.0) & (x < 1.0), arc, 0.0)

    def quantities(self, t: np.ndarray) -> dict[str, Quantities]:
        """Every quantity at the instants `t` (seconds since EPOCH), one array each."""
        sun = self.sun(t)
        cloud = 0.6 + 0.4 * np.asarray(self._clouds.value(t))
        pv_w = self.PV_PEAK_W * sun * np.minimum(cloud, 1.0)
        load_w = np.asarray(self._load.value(t))
        inverter_w = np.minimum(load_w, 0.9 * pv_w)
        grid_w = load_w - inverter_w
        battery_w = 0.95 * pv_w - inverter_w
        battery_v = (
            52.0 + np.where(battery_w > 0, 1.2, -0.6) + 0.2 * np.asarray(self._noise.value(t))
        )
        grid_v = 230.0 + 2.0 * np.asarray(self._noise.value(t + 500.0))
        output_v = 230.0

        def const(value: float | str) -> np.ndarray:
            return np.full(t.shape, value)

        return {
            "charger_workstate": const("work"),
            "mppt_state": np.where(pv_w > 0, "mppt", "stop"),
            "charging_state": np.where(battery_w > 0, "absorb", "stop"),
            "pv_voltage": np.where(pv_w > 0, 96.0 + 8.0 * sun, 0.0),
            "charger_battery_voltage": battery_v,
            "charger_current": pv_w / battery_v,
            "pv_power": pv_w,
            "charger_radiator_temperature": 30.0 + 15.0 * pv_w / self.PV_PEAK_W,
            "external_temperature": const(25.0),
            "charger_error_bits": const(0.0),
            "charger_warning_bits": const(0.0),
            "battery_voltage_grade": const(48.0),
            "charger_rated_current": const(60.0),
            "machine_type_number": const(1800.0),
            "serial_number": const(20240917.0),
            "hardware_version": const(10203.0),
            "software_version": const(10512.0),
            "status": const("grid_tie"),
            "ac_voltage_grade": const(230.0),
            "rated_apparent_power": const(self.RATED_W),
            "battery_voltage": battery_v,
            "output_voltage": const(output_v),
            "input_voltage": grid_v,
            "bus_voltage": const(380.0),
            "control_current": const(0.2),
            "inverter_current": inverter_w / output_v,
            "grid_current": grid_w / grid_v,
            "load_current": load_w / output_v,
            "inverter_power": inverter_w,
            "grid_power": grid_w,
            "load_power": load_w,
            "load_percent": 100.0 * load_w / self.RATED_W,
            "inverter_apparent_power": inverter_w / 0.95,
            "grid_apparent_power": grid_w / 0.95,
            "load_apparent_power": load_w / 0.95,
            "inverter_reactive_power": inverter_w * 0.33,
            "grid_reactive_power": grid_w * 0.33,
            "load_reactive_power": load_w * 0.33,
            "frequency": const(50.0),
            "input_frequency": 50.0 + 0.03 * np.asarray(self._noise.value(t + 900.0)),
            "ac_radiator_temperature": 35.0 + 10.0 * inverter_w / self.RATED_W,
            "temperature": 40.0 + 12.0 * load_w / self.RATED_W,
            "dc_radiator_temperature": 33.0 + 10.0 * pv_w / self.PV_PEAK_W,
            "battery_power": battery_w,
            "battery_current": battery_w / battery_v,
            "rated_power": const(self.RATED_W),
        }
