"""Daily grid (DST), summary, forecast features, CSV exports, compaction and the warehouse."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow.parquet as pq
import pytest

from energy_pipeline.catalog import build_catalog
from energy_pipeline.console.export import export_range
from energy_pipeline.lake.exports import prune_exports
from energy_pipeline.lake.layout import (
    DAILY_READINGS,
    RAW_READINGS,
    day_path,
    exports_dir,
    hour_dir,
)
from energy_pipeline.lake.maintenance import compact, exchange, read_manifest
from energy_pipeline.lake.schemas import RAW_SCHEMA
from energy_pipeline.lake.tables import write_day
from energy_pipeline.lake.warehouse import build_warehouse, query
from energy_pipeline.transforms.daily import daily_readings, daily_summary, minute_source
from energy_pipeline.transforms.features import forecast_features
from energy_pipeline.transforms.schemas import DAILY_READINGS_SCHEMA
from energy_pipeline.transforms.timegrid import day_window, minute_grid
from energy_pipeline.transforms.warehouse import TABLES, render
from energy_pipeline_tests.lakedata import site, write_raw

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2030, 1, 1, tzinfo=UTC)
E = "energy_active_import_total"
P = "power_active_total"


@pytest.mark.parametrize(
    ("day", "minutes"),
    [(date(2025, 3, 30), 1380), (date(2025, 10, 26), 1500), (date(2025, 1, 15), 1440)],
)
def test_grid_follows_local_time_on_dst_days(day: date, minutes: int) -> None:
    grid = minute_grid(day, BERLIN).to_pylist()
    assert len(grid) == minutes
    assert sum(r["marker_60min"] for r in grid) == minutes // 60
    assert sum(r["marker_15min"] for r in grid) == minutes // 15
    assert [r["minute_of_day"] for r in grid] == list(range(minutes))
    assert grid[0]["local_ts"] == datetime(day.year, day.month, day.day)
    if minutes == 1500:  # the repeated hour: local 02:00 appears twice, an hour apart in UTC
        twos = [r for r in grid if r["local_ts"] == datetime(2025, 10, 26, 2, 0)]
        assert len(twos) == 2 and twos[1]["ts"] - twos[0]["ts"] == timedelta(hours=1)


def _wh(t: datetime) -> float:
    return (t.timestamp() - 1.7e9) / 60


def _day_rows(day: date, devices=("m1",), every: int = 60, skip_minutes: int = 0):
    """Power 1000 W + 100 W per hour of the day; the energy counter grows 1 Wh per minute of
    absolute time, continuously across days."""
    start, end = day_window(day, BERLIN)
    rows, t, i = [], start, 0
    while t < end:
        if i >= skip_minutes * 60 // every:
            for dev in devices:
                rows.append((t, dev, P, 1000.0 + 100.0 * ((t - start).total_seconds() // 3600)))
                rows.append((t, dev, E, _wh(t)))
                rows.append((t, dev, "outdoor_temperature", 5.0))
        t += timedelta(seconds=every)
        i += 1
    return rows


def test_dst_day_from_raw_has_1500_minutes_and_a_correct_summary(tmp_path: Path) -> None:
    config = site(tmp_path)
    day = date(2025, 10, 26)
    write_raw(config.data_dir, _day_rows(day, skip_minutes=30), per_minute=False)
    start, end = day_window(day, BERLIN)
    src = minute_source(config.data_dir, build_catalog(config), start, end, NOW)
    assert src.from_minute_table == 0 and src.from_raw  # no minute table: computed from raw
    readings = daily_readings(src.table, day, BERLIN)
    per_series = {}
    for r in readings.select(["metric", "count", "minutes_elapsed", "minute_of_day"]).to_pylist():
        per_series.setdefault(r["metric"], []).append(r)
    assert {m: len(v) for m, v in per_series.items()} == {
        E: 1500,
        P: 1500,
        "outdoor_temperature": 1500,
    }
    power = per_series[P]
    assert power[29]["count"] == 0 and power[29]["minutes_elapsed"] is None  # explicit gap
    assert power[30]["minutes_elapsed"] == 0 and power[1499]["minutes_elapsed"] == 1469

    summary = daily_summary(
        readings.filter(readings.column("count").to_numpy() > 0),
        day,
        BERLIN,
        build_catalog(config),
        ["m1", "m2"],
    ).to_pylist()
    m1, m2 = summary
    assert m1["minutes_present"] == 1470 and m1["minutes_in_day"] == 1500
    assert m1["completeness_pct"] == pytest.approx(98.0)
    assert m1["energy_metric"] == E and m1["energy"] == 1469.0  # 1470 samples, 1469 steps
    assert m1["peak_15min_power"] == 1000.0 + 100.0 * 24  # the 25th local hour
    assert m1["power_min"] == 1000.0
    assert m2["minutes_present"] == 0 and m2["completeness_pct"] == 0.0


def test_expected_minutes_follow_the_polling_interval(tmp_path: Path) -> None:
    config = site(tmp_path, interval=120)
    day = date(2025, 1, 15)
    write_raw(config.data_dir, _day_rows(day, every=120), per_minute=False)
    start, end = day_window(day, BERLIN)
    src = minute_source(config.data_dir, build_catalog(config), start, end, NOW)
    readings = daily_readings(src.table, day, BERLIN)
    present = readings.filter(readings.column("count").to_numpy() > 0)
    (m1, _) = daily_summary(present, day, BERLIN, build_catalog(config), ["m1", "m2"]).to_pylist()
    assert m1["minutes_expected"] == 720 and m1["completeness_pct"] == 100.0


def _materialize_day(config, day: date) -> None:
    start, end = day_window(day, BERLIN)
    src = minute_source(config.data_dir, build_catalog(config), start, end, NOW)
    write_day(
        config.data_dir,
        DAILY_READINGS,
        day,
        daily_readings(src.table, day, BERLIN),
        DAILY_READINGS_SCHEMA,
    )


def test_forecast_features_lags_and_windows(tmp_path: Path) -> None:
    config = site(tmp_path)
    days = [date(2025, 1, 13), date(2025, 1, 14)]
    for d in days:
        write_raw(config.data_dir, _day_rows(d), per_minute=False)
        _materialize_day(config, d)
    today = pq.read_table(day_path(config.data_dir, DAILY_READINGS, days[1]))
    from energy_pipeline.transforms.features import history_files

    history = history_files(config.data_dir, days[1])
    assert len(history) == 1
    feats = forecast_features(
        today, history, days[1], BERLIN, build_catalog(config), "DE"
    ).to_pylist()
    assert len(feats) == 96
    slot = feats[8]  # local 02:00-02:15
    assert slot["target_kind"] == "energy" and slot["target"] == 15.0  # 15 minutes, 1 Wh each
    assert slot["lag_1d"] == 15.0 and slot["lag_7d"] is None
    assert slot["rolling_mean_1h"] == 15.0 and slot["hour"] == 2 and slot["slot_of_day"] == 8
    assert slot["outdoor_temp_c"] == 5.0 and slot["is_holiday"] is False
    assert feats[0]["target"] == 15.0  # the counter continues from the previous day's file


def test_exports_write_prognoza_and_logger_files(tmp_path: Path) -> None:
    config = site(tmp_path)
    day = date(2025, 1, 15)
    write_raw(
        config.data_dir, _day_rows(day, devices=("m1", "m2"), skip_minutes=2), per_minute=False
    )
    written, empty = export_range(config, day, day + timedelta(days=1), device="m1")
    assert empty == [day + timedelta(days=1)]
    names = sorted(p.relative_to(exports_dir(config.data_dir)).as_posix() for p in written)
    assert names == [
        "m1/2025-01-15_daily.csv",
        "m1/2025-01-15_weekly.csv",
        "m1_readings_2025-01-15.csv",
    ]
    with open(exports_dir(config.data_dir) / "m1_readings_2025-01-15.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == [
        "timestamp",
        "minutes_elapsed",
        "marker_5min",
        "marker_10min",
        "marker_15min",
        "marker_30min",
        "marker_60min",
        P,
        E,
        "outdoor_temperature",
    ], "metric columns in the profile's register order, as PROGNOZA wrote them"
    assert rows[1][:7] == [
        "2025-01-15T00:02:00.000",
        "0",
        "False",
        "False",
        "False",
        "False",
        "False",
    ]
    assert rows[4][:3] == ["2025-01-15T00:05:00.000", "3", "True"]
    start, _ = day_window(day, BERLIN)
    assert float(rows[1][8]) == _wh(start + timedelta(minutes=2))  # counter: its reading
    assert float(rows[1][7]) == 1000.0  # gauge: the minute's mean
    assert len(rows) == 1 + 1438
    old = exports_dir(config.data_dir) / "m1" / "2024-11-01_daily.csv"
    old.write_text("x")
    assert prune_exports(config.data_dir, day, 30) == [old]


def test_compaction_swaps_an_hour_folder_atomically(tmp_path: Path) -> None:
    config = site(tmp_path)
    t0 = datetime(2025, 1, 15, 10, tzinfo=UTC)
    rows = [(t0 + timedelta(seconds=s), "m1", P, float(s)) for s in range(0, 3600, 30)]
    write_raw(config.data_dir, rows)
    folder = hour_dir(config.data_dir, RAW_READINGS, t0)
    (folder / "broken.parquet").write_bytes(b"junk")
    q = f"SELECT count(*), sum(value) FROM read_parquet('{folder}/c*.parquet')"
    before = duckdb.sql(q).fetchall()
    assert len(list(folder.glob("c1-*.parquet"))) == 60
    report = compact(config.data_dir, RAW_READINGS, RAW_SCHEMA, t0 + timedelta(hours=1))
    assert report.atomic_swap and report.files_merged == 60 and report.rows == 120
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 2 and files[0] == "broken.parquet" and files[1].startswith("compacted-")
    assert duckdb.sql(q.replace("/c*.parquet", "/compacted-*.parquet")).fetchall() == before
    manifest = read_manifest(config.data_dir)
    assert manifest[str(folder.relative_to(config.data_dir))]["after"] == folder.stat().st_mtime_ns
    again = compact(config.data_dir, RAW_READINGS, RAW_SCHEMA, t0 + timedelta(hours=1))
    assert again.compacted == []  # already one compacted file


def test_exchange_swaps_two_folders(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "y").write_text("b")
    assert exchange(a, b)
    assert [p.name for p in a.iterdir()] == ["y"] and [p.name for p in b.iterdir()] == ["x"]


def test_warehouse_views_and_read_only_queries(tmp_path: Path) -> None:
    config = site(tmp_path)
    day = date(2025, 1, 15)
    write_raw(config.data_dir, _day_rows(day), per_minute=False)
    _materialize_day(config, day)
    _, counts = build_warehouse(config.data_dir, TABLES)
    assert counts["daily_readings"] == 3 * 1440 and counts["forecast_features"] == 0
    header, rows = query(
        config.data_dir,
        "SELECT metric, sum(count) FROM daily_readings GROUP BY 1 ORDER BY 1",
        TABLES,
    )
    assert header == ["metric", "sum(count)"] and rows[0] == (E, 1440)
    for statement in ("CREATE TABLE x (a INT)", "SELECT 1; COPY (SELECT 1) TO 'x.csv'"):
        with pytest.raises(duckdb.PermissionException):
            query(config.data_dir, statement, TABLES)
    assert not (tmp_path / "x.csv").exists()
    assert render(["a", "b"], [(1, None)], "csv") == "a,b\n1,"
    assert render(["a"], [(1,)], "json") == '[{"a": 1}]'
    assert "(1 row)" in render(["a"], [(1,)], "table")
