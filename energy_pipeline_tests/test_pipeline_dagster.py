"""The Dagster layer: in-process runs of minute ranges and daily partitions, the sensor across
cursor advances and downtime, definitions loading, and one run through the real CLI."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow.parquet as pq
import pytest

from energy_pipeline.defs.assemble import build_definitions
from energy_pipeline.defs.assets import build_assets
from energy_pipeline.defs.partitions import daily_partitions, minute_partitions
from energy_pipeline.defs.resources import EnergySite
from energy_pipeline.defs.sensors import RANGE_END_TAG, RANGE_START_TAG, Cursor
from energy_pipeline.lake.layout import (
    DAILY_READINGS,
    MINUTE_READINGS,
    RAW_READINGS,
    day_path,
    hour_dir,
)
from energy_pipeline.lake.maintenance import compact
from energy_pipeline.lake.schemas import RAW_SCHEMA
from energy_pipeline.transforms.schemas import MINUTE_SCHEMA
from energy_pipeline.transforms.timegrid import day_window
from energy_pipeline_tests.conftest import REPO, cli_env, run_cli
from energy_pipeline_tests.lakedata import site, write_raw, write_status

pytestmark = pytest.mark.slow  # real Dagster runs, one through the dagster CLI

BERLIN = ZoneInfo("Europe/Berlin")
E = "energy_active_import_total"
P = "power_active_total"
NOW = datetime.now(UTC)
# A local day well inside the rolling minute window, whatever the wall clock says.
DAY = NOW.astimezone(BERLIN).date() - timedelta(days=3)
DAY_START = day_window(DAY, BERLIN)[0]
T0 = DAY_START + timedelta(hours=10)


def _rows(start: datetime, minutes: int, every: int = 20):
    rows = []
    for i in range(minutes * 60 // every):
        t = start + timedelta(seconds=i * every)
        for dev in ("m1", "m2"):
            rows.append((t, dev, P, 500.0 + i % 7))
            rows.append((t, dev, E, 1000.0 + i))
    return rows


@pytest.fixture
def lake(tmp_path: Path):
    config = site(tmp_path, extra="pipeline: {max_minutes_per_run: 60}\n")
    write_raw(config.data_dir, _rows(T0, 90))
    return config


def _run(instance, config, selection, **kwargs) -> dg.ExecuteInProcessResult:
    mp, dp = minute_partitions(config), daily_partitions(config)
    return dg.materialize(
        build_assets(config, mp, dp),
        selection=selection,
        resources={"site": EnergySite(config_path=str(config.path))},
        instance=instance,
        **kwargs,
    )


def _range_tags(config, start: datetime, end: datetime) -> dict[str, str]:
    mp = minute_partitions(config)
    return {
        RANGE_START_TAG: mp.get_partition_key_for_timestamp(start.timestamp()),
        RANGE_END_TAG: mp.get_partition_key_for_timestamp((end - timedelta(minutes=1)).timestamp()),
    }


def _minute_rows(config) -> list[dict]:
    files = sorted((config.data_dir / MINUTE_READINGS).glob("date=*/hour=*/*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_definitions_load_and_validate(lake) -> None:
    defs = build_definitions(lake)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {RAW_READINGS, MINUTE_READINGS, DAILY_READINGS, "forecast_features", "warehouse"} <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == ["team:energy"] and node.group_name and node.kinds
    assert defs.get_sensor_def("sealed_minutes_sensor").default_status.value == "RUNNING"


def test_minute_range_in_one_run_and_rerun_changes_nothing(lake, dagster_instance) -> None:
    tags = _range_tags(lake, T0, T0 + timedelta(minutes=90))
    result = _run(dagster_instance, lake, [MINUTE_READINGS], tags=tags)
    assert result.success
    mats = result.asset_materializations_for_node(MINUTE_READINGS)
    assert len(mats) == 90  # one event per minute partition, one run, one query
    mat = mats[0]
    assert mat.metadata["rows_in_run"].value == 90 * 2 * 2
    assert "dagster/row_count" not in mat.metadata  # the run's total is no minute's count
    assert mat.metadata["raw_rows_read"].value == 90 * 3 * 4
    # the column schema is the definition's, not copied into each partition's event
    assert "dagster/column_schema" not in mat.metadata
    graph = build_definitions(lake).resolve_asset_graph()
    columns = graph.get(dg.AssetKey(MINUTE_READINGS)).metadata["dagster/column_schema"].columns
    assert [c.name for c in columns] == MINUTE_SCHEMA.names
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "no_duplicate_rows": True,
        "values_within_profile_bounds": True,
        "counters_never_decrease": True,
    }
    first = _minute_rows(lake)
    energy = [r for r in first if r["device_id"] == "m1" and r["metric"] == E]
    assert [r["delta"] for r in energy[:2]] == [2.0, 3.0]  # no previous value before T0
    assert _run(dagster_instance, lake, [MINUTE_READINGS], tags=tags).success
    assert _minute_rows(lake) == first

    # a partial re-run inside an hour replaces only its own minutes
    inner = _range_tags(lake, T0 + timedelta(minutes=20), T0 + timedelta(minutes=30))
    assert _run(dagster_instance, lake, [MINUTE_READINGS], tags=inner).success
    assert _minute_rows(lake) == first


def test_daily_partition_uses_minutes_and_rerun_is_identical(lake, dagster_instance) -> None:
    tags = _range_tags(lake, T0, T0 + timedelta(minutes=90))
    assert _run(dagster_instance, lake, [MINUTE_READINGS], tags=tags).success
    selection = [DAILY_READINGS, "daily_device_summary", "forecast_features", "csv_exports"]
    result = _run(dagster_instance, lake, selection, partition_key=DAY.isoformat())
    assert result.success
    (mat,) = result.asset_materializations_for_node(DAILY_READINGS)
    assert mat.metadata["hours_from_minute_readings"].value == 2
    assert mat.metadata["hours_computed_from_raw"].value == 0
    path = day_path(lake.data_dir, DAILY_READINGS, DAY)
    first = pq.read_table(path)
    minutes = int((day_window(DAY, BERLIN)[1] - DAY_START).total_seconds() // 60)
    assert first.num_rows == 2 * 2 * minutes
    assert mat.metadata["dagster/row_count"].value == first.num_rows  # one partition, its own
    checks = {e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()}
    assert checks["one_row_per_minute_of_the_day"][0] is True
    assert checks["daily_completeness"] == (False, dg.AssetCheckSeverity.ERROR)
    summary = pq.read_table(day_path(lake.data_dir, "daily_device_summary", DAY)).to_pylist()
    assert summary[0]["energy"] == 90 * 3 - 1 and summary[0]["minutes_present"] == 90
    assert _run(dagster_instance, lake, selection, partition_key=DAY.isoformat()).success
    assert pq.read_table(path).equals(first)
    assert (lake.data_dir / "exports" / f"m1_readings_{DAY.isoformat()}.csv").is_file()


def test_dst_day_outside_the_minute_window_is_computed_from_raw(
    tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    config = site(tmp_path)
    day = date(2025, 10, 26)
    start, _ = day_window(day, BERLIN)
    write_raw(config.data_dir, _rows(start, 25 * 60, every=60), per_minute=False)
    result = _run(dagster_instance, config, [DAILY_READINGS], partition_key=day.isoformat())
    assert result.success
    (mat,) = result.asset_materializations_for_node(DAILY_READINGS)
    assert mat.metadata["minutes_in_day"].value == 1500
    assert mat.metadata["hours_computed_from_raw"].value == 25  # no minute table that old
    table = pq.read_table(day_path(config.data_dir, DAILY_READINGS, day))
    assert table.num_rows == 2 * 2 * 1500
    (check,) = result.get_asset_check_evaluations()
    assert check.passed


def test_sensor_advances_caps_after_downtime_and_rereads_changed_hours(
    lake, dagster_instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(lake)
    sensor = defs.get_sensor_def("sealed_minutes_sensor")

    def tick(cursor: str | None) -> dg.SensorResult:
        return sensor(
            dg.build_sensor_context(instance=dagster_instance, cursor=cursor, definitions=defs)
        )

    assert not tick(None).run_requests  # no collector status yet
    mp = minute_partitions(lake)

    def window(req: dg.RunRequest) -> tuple[datetime, datetime]:
        s = mp.time_window_for_partition_key(req.tags[RANGE_START_TAG]).start
        e = mp.time_window_for_partition_key(req.tags[RANGE_END_TAG]).end
        return s.astimezone(UTC), e.astimezone(UTC)

    write_status(lake.data_dir, T0 + timedelta(minutes=30))
    first = tick(None)
    (req,) = first.run_requests
    assert window(req) == (T0, T0 + timedelta(minutes=30))  # starts at the first raw hour
    assert first.asset_events[0].asset_key == dg.AssetKey(RAW_READINGS)

    write_status(lake.data_dir, T0 + timedelta(hours=6))  # the sensor was down for hours
    second = tick(first.cursor)
    (req,) = second.run_requests
    assert window(req) == (T0 + timedelta(minutes=30), T0 + timedelta(minutes=90))  # capped
    third = tick(second.cursor)
    assert window(third.run_requests[0]) == (
        T0 + timedelta(minutes=90),
        T0 + timedelta(minutes=150),
    )
    assert Cursor.loads(third.cursor).processed == T0 + timedelta(minutes=150)

    # a late file lands in the first (fully processed) hour: that hour is requested again
    late = T0 + timedelta(minutes=5, seconds=7)
    os.utime(write_raw(lake.data_dir, [(late, "m1", P, 1.0)], collector="c2")[0].parent, ns=(1, 1))
    fourth = tick(third.cursor)
    rerun, onward = fourth.run_requests
    assert window(rerun) == (T0, T0 + timedelta(hours=1)) and rerun.run_key is None
    assert window(onward) == (T0 + timedelta(minutes=150), T0 + timedelta(minutes=210))
    assert tick(fourth.cursor).run_requests[0].tags[
        RANGE_START_TAG
    ] == mp.get_partition_key_for_timestamp(
        (T0 + timedelta(minutes=210)).timestamp()
    )  # the rerun is not repeated on the next tick

    # compaction changes the folder but not its rows: nothing is requested for it
    compact(lake.data_dir, RAW_READINGS, RAW_SCHEMA, T0 + timedelta(hours=1))
    fifth = tick(fourth.cursor)
    assert all(window(r)[0] >= T0 + timedelta(minutes=150) for r in fifth.run_requests)


def _dagster_cli(home: Path, config_path: Path):
    env = cli_env({"DAGSTER_HOME": str(home), "ENERGY_PIPELINE_CONFIG": str(config_path)})
    dagster = shutil.which("dagster", path=str(Path(os.sys.executable).parent))
    assert dagster

    def dagster_cli(*args: str) -> None:
        proc = subprocess.run(
            [dagster, *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    return dagster_cli


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return home


MODULE = ("-m", "energy_pipeline.definitions", "-a", "defs", "-d", str(REPO))


def test_partition_ranges_are_one_run_through_the_dagster_cli(tmp_path: Path) -> None:
    config = site(tmp_path)
    days = [date(2025, 3, 29), date(2025, 3, 30)]
    start = day_window(days[0], BERLIN)[0]
    write_raw(config.data_dir, _rows(start, 47 * 60, every=60), per_minute=False)
    home = _home(tmp_path)
    dagster_cli = _dagster_cli(home, config.path)
    first_hour = "2025-03-29-10:00...2025-03-29-10:59"
    dagster_cli("asset", "materialize", *MODULE, "--select", MINUTE_READINGS,
                "--partition-range", first_hour)  # fmt: skip
    selection = f"{DAILY_READINGS},daily_device_summary"
    dagster_cli("asset", "materialize", *MODULE, "--select", selection,
                "--partition-range", f"{days[0]}...{days[1]}")  # fmt: skip
    assert len(_minute_rows(config)) == 60 * 2 * 2
    for day, minutes in zip(days, (1440, 1380), strict=True):
        table = pq.read_table(day_path(config.data_dir, DAILY_READINGS, day))
        assert table.num_rows == 2 * 2 * minutes
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert len(instance.get_runs()) == 2  # one run per range
        event = instance.get_latest_materialization_event(dg.AssetKey(DAILY_READINGS))
        meta = event.asset_materialization.metadata
        per_day = meta["per_day"].value
        assert [d["day"] for d in per_day] == [d.isoformat() for d in days]
        assert [d["rows"] for d in per_day] == [2 * 2 * 1440, 2 * 2 * 1380]
        assert meta["rows_in_run"].value == 2 * 2 * (1440 + 1380)
        assert meta["dagster/row_count"].value == 2 * 2 * 1380  # the latest is the second day's
    finally:
        instance.dispose()


def test_one_run_through_the_dagster_cli(tmp_path: Path) -> None:
    config = site(tmp_path)
    day = date(2025, 3, 30)
    start, _ = day_window(day, BERLIN)
    write_raw(config.data_dir, _rows(start, 23 * 60, every=60), per_minute=False)
    home = _home(tmp_path)
    dagster_cli = _dagster_cli(home, config.path)

    dagster_cli("definitions", "validate", "-w", "workspace.yaml")
    # `asset materialize` takes no -w: it loads the module workspace.yaml names, the same way
    dagster_cli("asset", "materialize", *MODULE, "--select", DAILY_READINGS,
                "--partition", day.isoformat())  # fmt: skip
    table = pq.read_table(day_path(config.data_dir, DAILY_READINGS, day))
    assert table.num_rows == 2 * 2 * 1380  # spring forward: 23 hours
    assert (home / "storage").is_dir() or (home / "history").is_dir()  # persistent instance

    assert not (config.data_dir / "warehouse.duckdb").exists()  # sql needs no warehouse
    out = run_cli(
        "sql",
        "--config",
        str(config.path),
        "--json",
        "SELECT device_id, count(*) AS n FROM daily_readings GROUP BY 1 ORDER BY 1",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        {"device_id": "m1", "n": 2760},
        {"device_id": "m2", "n": 2760},
    ]
    csv_out = run_cli("sql", "--config", str(config.path), "--csv", "SELECT 1 AS a, NULL AS b")
    assert csv_out.stdout.strip() == "a,b\n1,"
    write = run_cli("sql", "--config", str(config.path), "DROP VIEW daily_readings")
    assert write.returncode == 1 and "read-only" in write.stderr
    exp = run_cli(
        "export", "--config", str(config.path), "--from", day.isoformat(), "--device", "m2"
    )
    assert exp.returncode == 0, exp.stderr
    assert exp.stdout.split() == [
        str(config.data_dir / "exports" / f"m2_readings_{day}.csv"),
        str(config.data_dir / "exports" / "m2" / f"{day}_daily.csv"),
        str(config.data_dir / "exports" / "m2" / f"{day}_weekly.csv"),
    ]
    bad = run_cli("export", "--config", str(config.path), "--from", "2025-13-01")
    assert bad.returncode == 2


def test_upkeep_job_compacts_sealed_hours_and_applies_retention(
    tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    config = site(
        tmp_path, extra="pipeline: {raw_retention_days: 400, compaction_grace_hours: 1}\n"
    )
    old = NOW - timedelta(days=500)
    write_raw(config.data_dir, _rows(old, 2))
    write_raw(config.data_dir, _rows(T0, 3))
    write_status(config.data_dir, T0 + timedelta(hours=3))
    defs = build_definitions(config)
    result = defs.resolve_job_def("upkeep_job").execute_in_process(instance=dagster_instance)
    assert result.success
    raw = config.data_dir / RAW_READINGS
    assert not (raw / f"date={old:%Y-%m-%d}").exists()  # past raw_retention_days
    (name,) = [p.name for p in hour_dir(config.data_dir, RAW_READINGS, T0).iterdir()]
    assert name.startswith("compacted-")


def _daily_outputs(config) -> dict[str, object]:
    """Every file the daily layer wrote: tables as rows, exports as bytes."""
    out: dict[str, object] = {}
    for table in (DAILY_READINGS, "daily_device_summary", "forecast_features"):
        for path in sorted((config.data_dir / table).glob("*.parquet")):
            out[f"{table}/{path.name}"] = pq.read_table(path).to_pylist()
    exports = config.data_dir / "exports"
    for path in sorted(exports.rglob("*.csv")):
        out[path.relative_to(exports).as_posix()] = path.read_bytes()
    return out


def test_a_range_run_writes_what_per_day_runs_write(tmp_path: Path, dagster_instance) -> None:
    config = site(tmp_path)
    days = [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
    start = day_window(days[0], BERLIN)[0]
    rows = []
    minutes = int((day_window(DAY, BERLIN)[1] - start).total_seconds() // 60)
    for i in range(minutes):
        t = start + timedelta(minutes=i)
        for dev in ("m1", "m2"):
            rows += [(t, dev, P, 500.0 + i), (t, dev, E, 1000.0 + 2 * i)]
            if day_window(days[1], BERLIN)[0] <= t < day_window(days[2], BERLIN)[0]:
                rows.append((t, dev, "outdoor_temperature", 4.0))  # one day only
    write_raw(config.data_dir, rows, per_minute=False)
    selection = [DAILY_READINGS, "daily_device_summary", "forecast_features", "csv_exports"]
    for day in days:
        assert _run(dagster_instance, config, selection, partition_key=day.isoformat()).success
    per_day = _daily_outputs(config)
    shutil.rmtree(config.data_dir / "exports")
    tags = {RANGE_START_TAG: days[0].isoformat(), RANGE_END_TAG: days[-1].isoformat()}
    result = _run(dagster_instance, config, selection, tags=tags)
    assert result.success
    assert len(dagster_instance.get_runs()) == len(days) + 1  # the range is one run
    assert _daily_outputs(config) == per_day
    with open(config.data_dir / "exports" / "m1" / f"{DAY}_weekly.csv") as fh:
        weekly = list(csv.reader(fh))
    assert weekly[0] == ["timestamp", P, E, "outdoor_temperature"]
    assert len(weekly) == 1 + minutes  # every minute of the 3 days
    assert weekly[1][3] == weekly[-1][3] == ""  # the days without the metric
    assert {r[3] for r in weekly[1:]} == {"", "4"}
