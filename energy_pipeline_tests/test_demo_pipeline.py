"""`energy-pipeline demo --headless`: simulators, history, collector and the whole pipeline,
as separate real processes, ending in a summary read back from the DuckDB warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from energy_pipeline_tests.conftest import REPO, run_cli
from energy_pipeline_tests.kit.ports import free_port

pytestmark = pytest.mark.slow  # the whole demo, every part a process


def test_headless_demo_runs_the_pipeline_end_to_end(tmp_path: Path) -> None:
    text = (REPO / "energy-pipeline.yaml").read_text()
    text = text.replace("port: 15020", f"port: {free_port()}")
    text = text.replace("port: 15021", f"port: {free_port()}")
    text = text.replace("port: 18889", f"port: {free_port()}")
    text = text.replace("port: 8080", f"port: {free_port()}")
    text = text.replace("data/sim/ups1.tty", str(tmp_path / "ups1.tty"))
    config = tmp_path / "site.yaml"
    config.write_text(text)
    proc = run_cli(
        "demo",
        "--config",
        str(config),
        "--headless",
        "--minutes",
        "1",
        "--history-days",
        "1.05",
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for line in (
        "simulators:",
        "history:",
        "collector: pid",
        "stopped collect (exit 0)",
        "minute_readings:",
        "daily_device_summary:",
    ):
        assert line in out
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    devices = {r[0] for r in con.sql("SELECT device_id FROM daily_device_summary").fetchall()}
    assert devices == {"umg509", "heatpump1", "ups1", "lux1", "meter1"}
    live = con.sql("SELECT count(*) FROM minute_readings").fetchall()[0][0]
    assert live > 0  # the last hour of history and the live minutes, in one range run
    assert "umg509" in out and "energy_active_import_total" in out
