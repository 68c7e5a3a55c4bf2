"""The whole site as separate processes, the way it runs in production.

The simulators (`simulate`), a week of simulated history (`simulate-history`), the collector
(`collect`) and `dagster dev` with the sensor and the schedules on. Ctrl-C stops them in
reverse order, each by its own pid. `--headless --minutes N` collects for N minutes without
the UI, then runs the pipeline in this process (`headless`) and prints a summary from DuckDB.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from energy_pipeline.config import Config
from energy_pipeline.console.supervisor import Child, spawn, stop, wait

DAGSTER_PORT = 3000


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent.parent


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
    log_dir = config.data_dir / "state" / "demo"
    return spawn(name, args, log_dir=log_dir, env=env, cwd=_repo_root(), pipe_stdout=pipe_stdout)


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
    stop_event = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop_event.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
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
            died = wait(stop_event, minutes * 60, children)
            if died:
                print(f"error: {died} exited early; see {config.data_dir}/state/demo/", file=out)
                return 1
            for child in reversed(children):
                stop(child, out)
            from energy_pipeline.demo.headless import run_headless

            return run_headless(config, started, out)
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
            'query:     energy-pipeline sql "SELECT device_id, count(*) FROM raw_readings '
            'GROUP BY 1"\n'
            "Ctrl-C stops everything.",
            file=out,
            flush=True,
        )
        died = wait(stop_event, None, children)
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
            stop(child, out)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
