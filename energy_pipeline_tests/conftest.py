"""Shared fixtures: the CLI as a real subprocess, and outside programs that CI must have."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from energy_pipeline_tests.kit.clock import FakeClock
from energy_pipeline_tests.kit.dagster import dagster_instance  # noqa: F401  (a fixture)

REPO = Path(__file__).resolve().parent.parent


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("ENERGY_PIPELINE_CONFIG", None)
    env.update(extra or {})
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m energy_pipeline ARGS` in a child process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "energy_pipeline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
        cwd=cwd or REPO,
        check=False,
    )


def missing_external(reason: str) -> NoReturn:
    """Skip on a laptop without an outside program or privilege a test needs; fail in CI."""
    if os.environ.get("REQUIRE_EXTERNAL") == "1":
        pytest.fail(f"{reason}, but CI requires it (REQUIRE_EXTERNAL=1)")
    pytest.skip(reason)


def require_program(name: str) -> str:
    """The path of an outside program; skip on a laptop without it, fail in CI."""
    path = shutil.which(name)
    if path:
        return path
    missing_external(f"{name} not installed")


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs: filling it really makes write(2) fail with ENOSPC."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if os.environ.get("REQUIRE_EXTERNAL") == "1":
            pytest.fail(f"cannot mount a tmpfs: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Any]:
    """A real InfluxDB 1.x on a free loopback port with an empty database `energy`."""
    from energy_pipeline_tests.influx_support import Influxd

    server = Influxd(require_program("influxd"), tmp_path)
    server.start()
    server.query("CREATE DATABASE energy")
    yield server
    server.stop()


SIMULATED_DAYS = 10
"""Enough for the forecast's 7-day seasonal naive and a backtest; ~10 s of simulation."""


@pytest.fixture(scope="session")
def simulated_lake(tmp_path_factory: pytest.TempPathFactory):
    """A session's shared lake: simulated history with every daily table (and the forecast)
    materialized; (config, local days). Tests only read it."""
    from energy_pipeline.defs.schedules import DAILY_ASSETS, FORECAST_ASSETS
    from energy_pipeline_tests.kit.lakes import materialize_days, materialize_range, simulate

    config, days = simulate(tmp_path_factory.mktemp("simulated"), SIMULATED_DAYS)
    materialize_days(config, days, DAILY_ASSETS)
    materialize_days(config, days, FORECAST_ASSETS)
    noon = f"{days[-1]}-12"
    materialize_range(config, f"{noon}:00", f"{noon}:59", ["minute_readings"])
    return config, days
