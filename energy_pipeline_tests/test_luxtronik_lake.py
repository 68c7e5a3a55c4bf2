"""The collector lands the Luxtronik heat pump's readings in the lake (runs once the `collect`
verb is part of the build)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from energy_pipeline.lake.layout import RAW_READINGS, table_glob
from energy_pipeline.lake.status import read_statuses
from energy_pipeline_tests.conftest import REPO, cli_env


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "energy_pipeline", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=cli_env(),
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _acknowledged(data_dir: Path) -> int:
    for status in read_statuses(data_dir):
        return int(status.get("devices", {}).get("lux1", {}).get("polls_ok", 0))
    return 0


def test_the_collector_lands_every_heat_pump_value(tmp_path: Path) -> None:
    pytest.importorskip("energy_pipeline.collector.service")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "site.yaml"
    config.write_text(
        "site: {name: plant-a, timezone: Europe/Berlin}\n"
        "storage: {data_dir: data}\n"
        "devices:\n"
        f"  - {{id: lux1, driver: luxtronik, interval: 1,"
        f" connection: {{host: 127.0.0.1, port: {port}}}}}\n"
    )
    sim = _start("simulate", "--config", str(config), "--json")
    try:
        assert sim.stdout is not None and sim.stdout.readline()
        collector = _start("collect", "--config", str(config))
        try:
            deadline = time.monotonic() + 30
            while _acknowledged(tmp_path / "data") < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            _stop(collector)
    finally:
        _stop(sim)
    assert collector.returncode == 0, collector.stderr.read() if collector.stderr else ""
    raw = table_glob(tmp_path / "data", RAW_READINGS)
    ((polls, metrics, flow),) = duckdb.sql(
        f"select count(distinct ts), count(distinct metric), "
        f"max(value) filter (where metric = 'ID_WEB_Temperatur_TVL') "
        f"from read_parquet('{raw}') where device_id = 'lux1'"
    ).fetchall()
    assert polls >= 2
    assert metrics == 1126 + 251 + 355 - 5 + 30
    assert 15.0 < flow < 60.0
