"""The collector lands the Luxtronik heat pump's readings in the lake: simulator and collector
each in its own process, as a user runs them."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from energy_pipeline.lake.layout import RAW_READINGS, table_glob
from energy_pipeline.lake.status import read_statuses
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.kit.sims import python, simulators, stop
from energy_pipeline_tests.kit.sites import write_site

pytestmark = pytest.mark.slow  # simulator and collector processes


def _acknowledged(data_dir: Path) -> int:
    for status in read_statuses(data_dir):
        return int(status.get("devices", {}).get("lux1", {}).get("polls_ok", 0))
    return 0


def test_the_collector_lands_every_heat_pump_value(tmp_path: Path) -> None:
    lux = {"id": "lux1", "driver": "luxtronik", "interval": 1}
    config = write_site(
        tmp_path, [{**lux, "connection": {"host": "127.0.0.1", "port": free_port()}}]
    )
    with simulators(config):
        collector = python("collect", "--config", str(config), stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while _acknowledged(tmp_path / "data") < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stop(collector, timeout=15)
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
