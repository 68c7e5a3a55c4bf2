"""`energy-pipeline sql` on a lake no Dagster run has touched, and on the simulated lake: views
created on the fly, and the catalog's `devices` and `metrics` tables."""

from __future__ import annotations

import json
from pathlib import Path

from energy_pipeline_tests.conftest import run_cli
from energy_pipeline_tests.kit.lakes import simulate


def _sql(config_path: Path, query: str) -> list[dict]:
    done = run_cli("sql", "--config", str(config_path), "--json", query)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_sql_right_after_history_with_units_from_the_catalog(tmp_path: Path) -> None:
    config, _ = simulate(tmp_path, 0.05)
    rows = _sql(
        config.path,
        "SELECT r.device_id, m.unit, m.kind, count(*) AS n FROM raw_readings r "
        "JOIN metrics m USING (device_id, metric) "
        "WHERE r.metric = 'energy_active_import_total' GROUP BY ALL ORDER BY 1",
    )
    assert [(r["device_id"], r["unit"], r["kind"]) for r in rows] == [("umg509", "Wh", "counter")]
    assert rows[0]["n"] > 0
    devices = _sql(config.path, "SELECT device_id, driver, profile FROM devices ORDER BY 1")
    assert devices == [
        {"device_id": "heatpump1", "driver": "modbus", "profile": "heatpump_generic"},
        {"device_id": "umg509", "driver": "modbus", "profile": "janitza_umg509pro"},
    ]
    empty = _sql(config.path, "SELECT count(*) AS n FROM load_forecast")
    assert empty == [{"n": 0}]  # tables not materialized yet are empty, typed views
    assert not (config.data_dir / "warehouse.duckdb").exists()


def test_sql_reads_every_daily_table_of_the_simulated_lake(simulated_lake) -> None:
    config, days = simulated_lake
    rows = _sql(
        config.path,
        "SELECT count(DISTINCT day) AS days, count(DISTINCT device_id) AS devices "
        "FROM daily_device_summary",
    )
    assert rows == [{"days": len(days), "devices": 2}]
