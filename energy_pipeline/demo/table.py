"""`energy-pipeline demo --poll-only`: the simulated site, polled live through the real drivers.

Starts the simulators of every device in the config in this process, builds the same drivers
the collector uses, polls them all every few seconds and redraws a compact table until Ctrl-C
(or `duration` seconds), then closes the drivers and stops the simulators.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from energy_pipeline.config import Config
from energy_pipeline.console.output import profile_of, value_text
from energy_pipeline.drivers.base import DeviceError, Driver
from energy_pipeline.drivers.registry import build_drivers
from energy_pipeline.lake.device_state import StateFiles
from energy_pipeline.profiles.model import Profile
from energy_pipeline.readings import Sample
from energy_pipeline.simulators import SimulatorError, start_all

KEY_METRICS = (
    "power_active_total",
    "energy_active_import_total",
    "voltage_l1_n",
    "current_l1",
    "cos_phi_l1",
    "frequency",
    "instant_power_w",
    "cumulative_power_kwh",
    "status",
    "battery_level",
    "load_power",
    "input_voltage",
    "outdoor_temperature",
    "flow_temperature",
    "return_temperature",
    "hot_water_temperature",
    "electric_power",
    "operation_mode",
    "operating_mode",
    "electric_energy_total",
    "ID_WEB_Temperatur_TA",
    "ID_WEB_Temperatur_TVL",
    "ID_WEB_Temperatur_TRL",
)
"""Shown first when a device reports them, then its profile's `publish` points."""
VALUES_PER_DEVICE = 8
_CLEAR = "\x1b[H\x1b[2J"


@dataclass(slots=True)
class Row:
    device_id: str
    driver: str
    latency_ms: float
    sample: Sample | None = None
    error: str | None = None
    profile: Profile | None = None


async def _poll(device_id: str, driver_name: str, driver: Driver) -> Row:
    row = Row(device_id, driver_name, 0.0, profile=profile_of(driver))
    started = time.perf_counter()
    try:
        row.sample = await driver.read()
    except DeviceError as exc:
        row.error = str(exc)
    row.latency_ms = (time.perf_counter() - started) * 1e3
    return row


def key_values(
    sample: Sample, profile: Profile | None = None, limit: int = VALUES_PER_DEVICE
) -> list[tuple[str, str]]:
    """The values worth a glance, as text with their unit or state label."""
    values = sample.valid_values()
    points = {p.name: p for p in profile.points} if profile else {}
    published = [p.name for p in points.values() if p.publish]
    order = [*KEY_METRICS, *published, *values]
    chosen = list(dict.fromkeys(n for n in order if n in values))[:limit]
    return [(name, value_text(values[name], points.get(name))) for name in chosen]


def render(config: Config, rows: list[Row], now: datetime) -> str:
    lines = [
        f"energy-pipeline demo - site {config.site.name} - {now:%Y-%m-%d %H:%M:%S} UTC "
        "(Ctrl-C to stop)",
        "",
    ]
    shown = {r.device_id: key_values(r.sample, r.profile) for r in rows if r.sample is not None}
    width = max((len(name) for pairs in shown.values() for name, _ in pairs), default=0)
    for row in rows:
        state = "ok" if row.sample is not None else "FAILED"
        lines.append(f"{row.device_id} ({row.driver})  {state}  {row.latency_ms:.1f} ms")
        if row.sample is None:
            lines.append(f"    {row.error}")
            continue
        cells = [f"{name:<{width}}  {text:<18}" for name, text in shown[row.device_id]]
        for i in range(0, len(cells), 2):
            lines.append("    " + " ".join(cells[i : i + 2]).rstrip())
    return "\n".join(lines) + "\n"


async def demo(
    config: Config, *, refresh: float = 5.0, duration: float | None = None, out: TextIO
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    clear = _CLEAR if out.isatty() else ""
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                endpoints = await start_all(config, None, stack)
            except SimulatorError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print("simulators:\n  " + "\n  ".join(endpoints) + "\n", file=out, flush=True)
            drivers = build_drivers(config, state=StateFiles(config.data_dir))
            for driver in drivers.values():
                stack.push_async_callback(driver.close)
            kinds = {d.id: d.driver for d in config.devices}
            deadline = None if duration is None else loop.time() + duration
            while not stop.is_set():
                rows = await asyncio.gather(
                    *(_poll(i, kinds[i], drv) for i, drv in drivers.items())
                )
                out.write(clear + render(config, list(rows), datetime.now(UTC)))
                out.flush()
                wait = refresh if deadline is None else min(refresh, deadline - loop.time())
                if wait <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                if deadline is not None and loop.time() >= deadline:
                    break
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def run_demo(
    config: Config,
    *,
    refresh: float = 5.0,
    duration: float | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the demo until Ctrl-C/SIGTERM or `duration` seconds; 0 on a clean stop."""
    return asyncio.run(demo(config, refresh=refresh, duration=duration, out=out or sys.stdout))
