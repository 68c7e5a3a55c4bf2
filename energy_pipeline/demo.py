"""`energy-pipeline demo`: the simulated site, polled live through the real drivers.

Starts the simulators of every device in the config in this process, builds the same drivers
the collector uses, polls them all every few seconds and redraws a compact table until Ctrl-C
(or `duration` seconds), then closes the drivers and stops the simulators.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from energy_pipeline.config import Config
from energy_pipeline.drivers import build_drivers
from energy_pipeline.drivers.base import DeviceError, Driver
from energy_pipeline.profiles.model import Point, Profile
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
    profile = getattr(driver, "profile", None)
    row = Row(
        device_id, driver_name, 0.0, profile=profile if isinstance(profile, Profile) else None
    )
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
    return [(name, _text(values[name], points.get(name))) for name in chosen]


def _text(value: float, point: Point | None) -> str:
    text = f"{value:.6g}"
    if point is None:
        return text
    label = point.labels.get(int(value)) if point.labels and value.is_integer() else None
    if label:
        return f"{text} ({label})"
    return f"{text} {point.unit}" if point.unit else text


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
            drivers = build_drivers(config)
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


# --- v2: the whole pipeline -----------------------------------------------------------------
# `energy-pipeline demo` runs the site end to end as separate processes, the way it runs in
# production: the simulators (`simulate`), a week of simulated history (`simulate-history`),
# the collector (`collect`) and `dagster dev` with the sensor and the schedules on. Ctrl-C stops
# them in reverse order, each by its own pid. `--headless --minutes N` collects for N minutes
# without the UI, then runs the pipeline in this process and prints a summary from DuckDB.

DAGSTER_PORT = 3000
STOP_TIMEOUT = 20.0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[str]
    log: Path
    reported: bool = False


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _child_env(config: Config, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Children run this very code (PYTHONPATH) against this very site (the config path)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_repo_root()) + os.pathsep + env.get("PYTHONPATH", "")
    env["ENERGY_PIPELINE_CONFIG"] = str(config.path)
    env.update(extra or {})
    return env


def _spawn(
    name: str, args: list[str], config: Config, env: dict[str, str], pipe_stdout: bool = False
) -> Child:
    logs = config.data_dir / "state" / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with open(log_path, "a") as log_file:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE if pipe_stdout else log_file,
            stderr=log_file,
            text=True,
            env=env,
            cwd=_repo_root(),
            start_new_session=True,  # Ctrl-C reaches the demo, which stops children in order
        )
    return Child(name, proc, log_path)


def _stop(child: Child, out: TextIO) -> None:
    if child.reported:
        return
    child.reported = True
    if child.proc.poll() is None:
        child.proc.send_signal(signal.SIGTERM)
        try:
            child.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"  {child.name} did not stop in {STOP_TIMEOUT:.0f} s; killing it", file=out)
            child.proc.kill()
            child.proc.wait()
    print(f"  stopped {child.name} (exit {child.proc.returncode})", file=out, flush=True)


def _start_simulators(config: Config, env: dict[str, str]) -> tuple[Child, list[str]]:
    args = [sys.executable, "-m", "energy_pipeline", "simulate", "--config", str(config.path)]
    sim = _spawn("simulate", [*args, "--json"], config, env, pipe_stdout=True)
    assert sim.proc.stdout is not None
    line = sim.proc.stdout.readline()
    if not line:
        sim.proc.wait()
        raise RuntimeError(f"simulators failed to start; see {sim.log}")
    return sim, json.loads(line)["endpoints"]


def dagster_home(config: Config) -> Path:
    """`.dagster/` beside the config: a persistent instance with the repo's dagster.yaml."""
    home = config.base_dir / ".dagster"
    home.mkdir(parents=True, exist_ok=True)
    source = _repo_root() / "dagster.yaml"
    if source.is_file() and not (home / "dagster.yaml").exists():
        shutil.copy(source, home / "dagster.yaml")
    return home.resolve()


def _wait(stop: threading.Event, seconds: float | None, children: list[Child]) -> str | None:
    """Sleep until Ctrl-C, the deadline, or a child's death (named in the return value)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while not stop.is_set():
        for child in children:
            if child.proc.poll() is not None:
                return child.name
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return None
        stop.wait(1.0 if left is None else min(1.0, left))
    return None


def run_pipeline_demo(
    config: Config,
    *,
    headless: bool,
    minutes: float,
    history_days: float,
    port: int = DAGSTER_PORT,
    out: TextIO | None = None,
) -> int:
    """The whole site: simulators, history, collector, and Dagster (UI or headless)."""
    from energy_pipeline.simulators.history import simulate_history

    out = out or sys.stdout
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    children: list[Child] = []
    home = dagster_home(config)
    env = _child_env(config, {"DAGSTER_HOME": str(home)})
    started = datetime.now(UTC)
    try:
        sim, endpoints = _start_simulators(config, env)
        children.append(sim)
        print("simulators:\n  " + "\n  ".join(endpoints), file=out, flush=True)
        if history_days > 0:
            result = simulate_history(config, history_days, progress=None)
            print(
                f"history: {result.readings:,} readings, {result.start:%Y-%m-%d %H:%M} to "
                f"{result.end:%Y-%m-%d %H:%M} UTC",
                file=out,
                flush=True,
            )
        cli = [sys.executable, "-m", "energy_pipeline"]
        children.append(
            _spawn("collect", [*cli, "collect", "--config", str(config.path)], config, env)
        )
        print(
            f"collector: pid {children[-1].proc.pid}, lake {config.data_dir}", file=out, flush=True
        )
        if headless:
            died = _wait(stop, minutes * 60, children)
            if died:
                print(f"error: {died} exited early; see {config.data_dir}/state/demo/", file=out)
                return 1
            for child in reversed(children):
                _stop(child, out)
            return _headless_pipeline(config, started, out)
        dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
        workspace = _repo_root() / "workspace.yaml"
        target = (
            ["-w", str(workspace)] if workspace.is_file() else ["-m", "energy_pipeline.definitions"]
        )
        children.append(
            _spawn(
                "dagster",
                [dagster, "dev", *target, "-h", "127.0.0.1", "-p", str(port)],
                config,
                env,
            )
        )
        http = config.outputs.http
        if http is not None:
            print(f"dashboard: http://{http.host}:{http.port}/ (live values, alerts)", file=out)
        print(
            f"dagster:   http://127.0.0.1:{port} (sensor and schedules on; DAGSTER_HOME={home})\n"
            f"logs:      {config.data_dir}/state/demo/\n"
            'query:     energy-pipeline sql "SELECT * FROM daily_device_summary" '
            "(after the warehouse asset ran)\n"
            "Ctrl-C stops everything.",
            file=out,
            flush=True,
        )
        died = _wait(stop, None, children)
        if died:
            print(f"error: {died} exited; see {config.data_dir}/state/demo/{died}.log", file=out)
            return 1
        return 0
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if any(c.proc.poll() is None for c in children):
            print("stopping...", file=out, flush=True)
        for child in reversed(children):
            _stop(child, out)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _headless_pipeline(config: Config, started: datetime, out: TextIO) -> int:
    """What the sensor and the daily schedule would do, in this process: the live minutes as
    one range run, every day of history through the daily layer, then the warehouse."""
    import dagster as dg

    from energy_pipeline.defs.assemble import build_definitions
    from energy_pipeline.defs.partitions import minute_window_start
    from energy_pipeline.defs.sensors import RANGE_END_TAG, RANGE_START_TAG, floor_minute
    from energy_pipeline.lake.warehouse import query
    from energy_pipeline.transforms.timegrid import days_between
    from energy_pipeline.transforms.warehouse import render

    for noisy in ("alembic", "dagster"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    now = datetime.now(UTC)
    defs = build_definitions(config, now)
    instance = dg.DagsterInstance.ephemeral()
    tz = ZoneInfo(config.site.timezone)
    # The collector has stopped and sealed everything it acknowledged, so every complete
    # minute is final: one range run, as the sensor would request it, over the last hour of
    # history and the live minutes (a slow start may leave the live minutes nearly empty).
    first = max(floor_minute(started) - timedelta(hours=1), minute_window_start(config, now))
    last = floor_minute(now) - timedelta(minutes=1)
    if last >= first:
        parts = defs.resolve_assets_def("minute_readings").partitions_def
        assert isinstance(parts, dg.TimeWindowPartitionsDefinition)
        tags = {
            RANGE_START_TAG: parts.get_partition_key_for_timestamp(first.timestamp()),
            RANGE_END_TAG: parts.get_partition_key_for_timestamp(last.timestamp()),
        }
        ok = defs.resolve_job_def("minute_job").execute_in_process(
            instance=instance, tags=tags, raise_on_error=False
        )
        print(
            f"minute_readings: {tags[RANGE_START_TAG]} .. {tags[RANGE_END_TAG]}: "
            f"{'ok' if ok.success else 'FAILED'}",
            file=out,
            flush=True,
        )
        if not ok.success:
            return 1
    daily = defs.resolve_job_def("daily_job")
    earliest = _earliest_raw_day(config, tz)
    yesterday = now.astimezone(tz).date() - timedelta(days=1)
    for day in days_between(earliest, yesterday) if earliest else []:
        result = daily.execute_in_process(
            instance=instance, partition_key=day.isoformat(), raise_on_error=False
        )
        print(f"daily {day}: {'ok' if result.success else 'FAILED'}", file=out, flush=True)
        if not result.success:
            return 1
    warehouse = defs.resolve_job_def("warehouse_job")
    if not warehouse.execute_in_process(instance=instance, raise_on_error=False).success:
        return 1
    header, rows = query(
        config.data_dir,
        "SELECT device_id, count(*) AS days, round(sum(energy), 3) AS energy, "
        "any_value(energy_metric) AS energy_metric, round(max(peak_15min_power), 1) AS peak_15min, "
        "round(avg(completeness_pct), 1) AS completeness_pct "
        "FROM daily_device_summary GROUP BY device_id ORDER BY device_id",
    )
    print("\ndaily_device_summary:\n" + render(header, rows, "table"), file=out)
    header, rows = query(
        config.data_dir,
        "SELECT (SELECT count(*) FROM minute_readings) AS minute_rows, "
        "(SELECT count(*) FROM daily_readings) AS daily_rows, "
        "(SELECT count(*) FROM forecast_features) AS feature_rows",
    )
    print("\n" + render(header, rows, "table"), file=out, flush=True)
    return 0


def _earliest_raw_day(config: Config, tz: ZoneInfo) -> date | None:
    from energy_pipeline.lake.layout import RAW_READINGS
    from energy_pipeline.lake.scan import hour_folders

    folders = hour_folders(config.data_dir, RAW_READINGS)
    return folders[0][0].astimezone(tz).date() if folders else None
