"""`energy-pipeline export influxdb` as a user runs it (a child process) against a real influxd:
the lake's readings of local days arrive exact, a second run writes the same points (the count
is unchanged), minute readings carry the mean (the last reading for counters), progress is on
stderr, and a config without `outputs.influxdb` is a usage error naming the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from energy_pipeline.catalog import build_catalog
from energy_pipeline.lake.layout import MINUTE_READINGS
from energy_pipeline.lake.tables import write_hourly
from energy_pipeline.transforms.minute import compute_minutes
from energy_pipeline.transforms.schemas import MINUTE_SCHEMA
from energy_pipeline_tests.conftest import run_cli
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.lakedata import site, write_raw

pytestmark = pytest.mark.slow  # child processes and a real influxd

E = "energy_active_import_total"
# The local day 2026-03-01 in Berlin is [02-28 23:00Z, 03-01 23:00Z).
DAY_START = datetime(2026, 2, 28, 23, 0, tzinfo=UTC)


def lake_rows() -> list[tuple[datetime, str, str, float]]:
    rows = []
    for i in range(0, 24 * 60 + 30, 7):  # every 7 minutes, 30 minutes past the day's end
        ts = DAY_START + timedelta(minutes=i)
        for dev in ("m1", "m2"):
            rows.append((ts, dev, "voltage_l1_n", 230.0 + i / 7000 + (dev == "m2") * 0.1))
            rows.append((ts, dev, E, 1e6 + i * 3.0))
            if i % 2:
                rows.append((ts, dev, "outdoor_temperature", -(i % 100) / 10))
    return rows


def test_backfill_writes_the_lake_and_is_idempotent(influxd, tmp_path: Path) -> None:
    extra = f"outputs:\n  influxdb: {{url: '{influxd.url}', database: energy}}\n"
    config = site(tmp_path, extra=extra)
    rows = lake_rows()
    write_raw(config.data_dir, rows)
    args = ("export", "influxdb", "--from", "2026-03-01", "--config", str(config.path))

    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    inside = [r for r in rows if DAY_START <= r[0] < DAY_START + timedelta(days=1)]
    points = {(r[1], r[0]) for r in inside}
    assert f"2026-03-01: {len(points)} points (1/1 days)" in first.stderr
    got = influxd.rows("SELECT * FROM energy", "energy")
    assert len(got) == len(points)
    by_point = {(g["device_id"], g["time"]): g for g in got}
    for ts, dev, metric, value in inside:
        assert by_point[(dev, int(ts.timestamp() * 1000))][metric] == value
    assert {g["site"] for g in got} == {"test"}

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    one = run_cli(*args, "--device", "m1")
    assert one.returncode == 0 and f"{len(points) // 2} points" in one.stderr
    assert influxd.rows("SELECT * FROM energy", "energy") == got

    minutes, _ = compute_minutes(
        config.data_dir,
        build_catalog(config),
        DAY_START,
        DAY_START + timedelta(hours=2),
        DAY_START + timedelta(days=2),
    )
    write_hourly(
        config.data_dir,
        MINUTE_READINGS,
        minutes,
        DAY_START,
        DAY_START + timedelta(hours=2),
        MINUTE_SCHEMA,
    )
    table = ("--table", "minute_readings", "--measurement", "energy_minute")
    done = run_cli(*args, *table)
    assert done.returncode == 0, done.stderr
    got = influxd.rows("SELECT * FROM energy_minute WHERE device_id = 'm2'", "energy")
    expected = {
        int(r["ts"].timestamp() * 1000): r
        for r in minutes.to_pylist()
        if r["device_id"] == "m2" and r["metric"] in ("voltage_l1_n", E)
    }
    assert {g["time"] for g in got} == set(expected)
    for g in got:
        assert g["voltage_l1_n"] is not None
        assert g[E] is not None
    volts = {
        int(r["ts"].timestamp() * 1000): r["avg"]
        for r in minutes.to_pylist()
        if r["device_id"] == "m2" and r["metric"] == "voltage_l1_n"
    }
    energy = {
        int(r["ts"].timestamp() * 1000): r["last"]
        for r in minutes.to_pylist()
        if r["device_id"] == "m2" and r["metric"] == E
    }
    assert {g["time"]: g["voltage_l1_n"] for g in got} == volts
    assert {g["time"]: g[E] for g in got} == energy


def test_backfill_without_an_influxdb_output_is_a_usage_error(tmp_path: Path) -> None:
    config = site(tmp_path)
    result = run_cli("export", "influxdb", "--from", "2026-03-01", "--config", str(config.path))
    assert result.returncode == 2
    assert str(config.path) in result.stderr and "outputs.influxdb" in result.stderr


def test_backfill_of_an_unreachable_influxdb_says_where_to_resume(tmp_path: Path) -> None:
    extra = (
        f"outputs:\n  influxdb: {{url: 'http://127.0.0.1:{free_port()}', database: energy,"
        " backoff_initial: 0.01, backoff_max: 0.02}\n"
    )
    config = site(tmp_path, extra=extra)
    write_raw(config.data_dir, lake_rows()[:50])
    result = run_cli("export", "influxdb", "--from", "2026-03-01", "--config", str(config.path))
    assert result.returncode == 1
    assert "Connection refused" in result.stderr and "rerun with --from 2026-03-01" in result.stderr
