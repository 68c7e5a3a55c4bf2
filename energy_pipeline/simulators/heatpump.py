"""A heat pump that answers to any heat-pump profile (Luxtronik SHI, NIBE, the generic map).

The compressor runs in cycles whose duty and power follow the outdoor temperature (heating
curve, COP falling with the cold); two hot-water charges a day (05:00 and 17:00 local). Flow,
return and hot-water temperatures rise while it runs and relax while it rests. Energy counters
come from a CycleLedger, so they are the exact integral of the reported power.

Profiles name their points differently, so points are matched to quantities by the words in
their names (`quantity_key`); whatever stays unmatched gets the generic default.
"""

from __future__ import annotations

import math

import numpy as np

from energy_pipeline.profiles.model import Point
from energy_pipeline.simulators.ledger import CycleLedger
from energy_pipeline.simulators.points import Quantities
from energy_pipeline.simulators.site import SiteWeather, standard_offset_s, temperature_curve

_HEATING_LIMIT_C = 16.0
_DHW_HOURS = (5.0, 17.0)
_DHW_TOP_C, _DHW_LOW_C = 53.0, 44.0
_DHW_COOLING_S = 10 * 3600.0
# Ledger channels: electric and thermal power, for heating and hot water.
_EL_HEAT, _EL_DHW, _TH_HEAT, _TH_DHW = range(4)


class HeatPump:
    def __init__(self, weather: SiteWeather, seed: int):
        self._temp = temperature_curve(weather.seed, weather.tz)
        self._offset_s = standard_offset_s(weather.tz)
        period = 1800.0 + seed % 900
        self._ledger = CycleLedger(period, 4, self._plan)
        self._period = period

    def _is_dhw(self, starts: np.ndarray) -> np.ndarray:
        hours = ((starts + self._offset_s) / 3600.0) % 24.0
        return np.any([(h <= hours) & (hours < h + 1.0) for h in _DHW_HOURS], axis=0)

    def _demand(self, outdoor: np.ndarray | float) -> np.ndarray | float:
        return np.clip((_HEATING_LIMIT_C - np.asarray(outdoor)) / 28.0, 0.0, 1.0)

    def _plan(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outdoor = np.asarray(self._temp.value(starts))
        demand = np.asarray(self._demand(outdoor))
        dhw = self._is_dhw(starts)
        heating_duty = np.where(
            outdoor < _HEATING_LIMIT_C, np.clip(0.2 + 0.75 * demand, 0, 0.95), 0
        )
        duty = np.where(dhw, 0.85, heating_duty)
        p_el = np.where(dhw, 2400.0, 900.0 + 2600.0 * demand)
        cop = np.where(
            dhw, np.clip(2.4 + 0.04 * outdoor, 1.8, 3.6), np.clip(3.2 + 0.07 * outdoor, 2.0, 5.5)
        )
        levels = np.zeros((starts.size, 4))
        levels[:, _EL_HEAT] = np.where(dhw, 0.0, p_el)
        levels[:, _EL_DHW] = np.where(dhw, p_el, 0.0)
        levels[:, _TH_HEAT] = levels[:, _EL_HEAT] * cop
        levels[:, _TH_DHW] = levels[:, _EL_DHW] * cop
        return duty, levels

    def _flow_target(self, outdoor: np.ndarray) -> np.ndarray:
        return np.clip(22.0 + 0.55 * (20.0 - outdoor), 25.0, 50.0)

    def _hot_water(self, t: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Charged to the top by each hot-water run, cooling towards the low mark in between."""
        period, duty = self._period, self._ledger.duty
        back = np.arange(int(86_400 / period) + 3)
        cycles = k[:, None] - back
        is_run = (cycles >= 0) & (self._ledger.levels[np.maximum(cycles, 0), _EL_DHW] > 0)
        newest = np.argmax(is_run, axis=1)
        last = k - newest
        before_last = is_run & (back > newest[:, None])
        prev = np.where(before_last.any(axis=1), k - np.argmax(before_last, axis=1), -1)
        run_start, run_s = last * period, duty[last] * period
        before = self._cooled(run_start, prev)
        with np.errstate(divide="ignore", invalid="ignore"):
            charging = before + (_DHW_TOP_C - before) * (t - run_start) / run_s
        value = np.where(t < run_start + run_s, charging, self._cooled(t, last))
        return np.where(is_run.any(axis=1), value, _DHW_LOW_C)

    def _cooled(self, t: np.ndarray, run: np.ndarray) -> np.ndarray:
        """Hot-water temperature at t after `run` (a cycle index, -1 for none) charged it."""
        since = t - (run + self._ledger.duty[np.maximum(run, 0)]) * self._period
        cooled = _DHW_LOW_C + (_DHW_TOP_C - _DHW_LOW_C) * np.exp(-since / _DHW_COOLING_S)
        return np.where(run >= 0, cooled, _DHW_LOW_C)

    def quantities(self, t: np.ndarray) -> dict[str, Quantities]:
        """Every quantity at the instants `t` (seconds since EPOCH), one array each."""
        ledger, period = self._ledger, self._period
        k = ledger.index(t)
        start = k * period
        duty = ledger.duty[k]
        run_s = duty * period
        into = t - start
        running = into < run_s
        levels = ledger.levels[k]
        dhw_cycle = levels[:, _EL_DHW] > 0
        outdoor = np.asarray(self._temp.value(t))
        day_mean = (
            np.asarray(self._temp.integral(t)) - np.asarray(self._temp.integral(t - 86_400.0))
        ) / 86_400.0
        demand = np.asarray(self._demand(np.asarray(self._temp.value(start))))
        target = np.where(dhw_cycle, 55.0, self._flow_target(outdoor))
        idle_level = np.where(duty > 0, np.maximum(target - 6.0, 24.0), 24.0)
        rise = target + 2.0 - idle_level
        peak = idle_level + rise * (1 - np.exp(-run_s / 240.0))
        rested = into - run_s
        flow = np.where(
            running,
            idle_level + rise * (1 - np.exp(-into / 240.0)),
            idle_level + (peak - idle_level) * np.exp(-np.maximum(rested, 0.0) / 600.0),
        )
        spread = np.where(
            running,
            5.0 * (1 - np.exp(-into / 300.0)),
            np.where(run_s > 0, 0.5 + 4.5 * np.exp(-np.maximum(rested, 0.0) / 300.0), 0.5),
        )
        totals = ledger.totals(t) / 3600.0
        p_el = np.where(running, levels[:, _EL_HEAT] + levels[:, _EL_DHW], 0.0)
        p_th = np.where(running, levels[:, _TH_HEAT] + levels[:, _TH_DHW], 0.0)
        mode = np.where(running, np.where(dhw_cycle, "hot_water", "heating"), "off")
        source_in = 4.0 + 0.15 * day_mean

        def const(value: float | str) -> np.ndarray:
            return np.full(t.shape, value)

        return {
            "outdoor": outdoor,
            "outdoor_avg": day_mean,
            "flow": flow,
            "flow_target": target,
            "return": flow - spread,
            "return_target": target - 5.0,
            "mixing": flow - 3.0,
            "mixing_target": target - 3.0,
            "hot_water": self._hot_water(t, k),
            "hot_water_target": const(50.0),
            "room": 20.8 + 0.4 * np.sin(2 * math.pi * (t % 86_400.0) / 86_400.0),
            "source_in": source_in,
            "source_out": source_in - np.where(running, 3.0, 0.4),
            "compressor_hz": np.where(running, 30.0 + 60.0 * demand, 0.0),
            "compressor": np.where(running, "on", "off"),
            "power_electric": p_el,
            "power_thermal": p_th,
            "energy_el_total": totals[:, _EL_HEAT] + totals[:, _EL_DHW],
            "energy_el_heating": totals[:, _EL_HEAT],
            "energy_el_hot_water": totals[:, _EL_DHW],
            "energy_th_total": totals[:, _TH_HEAT] + totals[:, _TH_DHW],
            "energy_th_heating": totals[:, _TH_HEAT],
            "energy_th_hot_water": totals[:, _TH_DHW],
            "mode": mode,
            "heating_status": np.where(mode == "heating", "running", "no_request"),
            "hot_water_status": np.where(mode == "hot_water", "running", "no_request"),
            "disabled": const("disabled"),
            "status_bits": np.where(running, 1.0, 0.0),
            "zero": const(0.0),
            "heating_setpoint": const(35.0),
            "hot_water_setpoint": const(50.0),
            "degree_minutes": -10.0 - 300.0 * demand * np.where(running, 0.2, 1.0),
            "heating_curve": const(7.0),
        }


def quantity_key(point: Point) -> str | None:
    """The HeatPump quantity a profile point shows, judged from the words in its name."""
    n = point.name.lower()

    def has(*words: str) -> bool:
        return any(w in n for w in words)

    is_target = has("target", "calculated", "setpoint")
    if point.kind == "counter" or has("energy"):
        kind = "th" if has("thermal", "heat_quantity") else "el"
        if has("cooling", "pool"):
            return "zero"
        if has("hot_water", "dhw"):
            return f"energy_{kind}_hot_water"
        if has("heating"):
            return f"energy_{kind}_heating"
        return f"energy_{kind}_total"
    if point.unit in ("°C", "C") or has("temperature", "temp"):
        rules = (
            (("outdoor", "outside"), "outdoor_avg" if has("average", "avg") else "outdoor"),
            (("mixing",), "mixing_target" if is_target else "mixing"),
            (("flow", "supply"), "flow_target" if is_target else "flow"),
            (("return",), "return_target" if is_target else "return"),
            (("hot_water", "dhw"), "hot_water_target" if is_target else "hot_water"),
            (("room", "indoor"), "room"),
            (("source_in", "brine_in"), "source_in"),
            (("source_out", "brine_out"), "source_out"),
        )
        for words, key in rules:
            if has(*words):
                return key
    if has("setpoint"):
        return "hot_water_setpoint" if has("hot_water", "dhw") else "heating_setpoint"
    if has("offset"):
        return "zero"
    if has("compressor"):
        return "compressor_hz" if has("freq") else "compressor"
    if has("power"):
        return "power_electric" if has("electric") else "power_thermal"
    if has("bits"):
        return "status_bits"
    if has("status"):
        if has("cooling", "pool"):
            return "disabled"
        return "hot_water_status" if has("hot_water", "dhw") else "heating_status"
    if has("mode", "priority"):
        return "mode" if point.register_type == "input" else None
    if has("error", "alarm", "fault", "defrost"):
        return "zero"
    if has("degree_minutes"):
        return "degree_minutes"
    if has("heating_curve"):
        return "heating_curve"
    return None


def looks_like_heat_pump(points: list[Point]) -> bool:
    keys = {quantity_key(p) for p in points}
    return bool(keys & {"flow", "return", "compressor", "compressor_hz"})
