"""Pipeline speed: one day of 1 s raw data for 10 Janitza-sized devices (61 metrics each), and a
week of the demo site's daily layer.

Prints (medians of --repeat runs, seconds):
- the 1,440 minute partitions of one local day materialized in ONE Dagster run (range tags),
  beside the same range run of a no-op asset with the same checks (Dagster's own floor),
- the daily assets (daily_readings, daily_device_summary, forecast_features, csv_exports),
- the same minute work by a straightforward pandas implementation, in the same process (ratio),
- a year of forecast_features for 10 devices queried from the DuckDB warehouse,
- week: the demo site (energy-pipeline.yaml: Janitza, heat pump, UPS, the 1,757-value Luxtronik,
  smart meter; 8 days from `simulate-history`, no minute_readings, so every day is computed
  from raw) — the 4 daily assets over 7 local days as ONE range run, beside the naive way (7
  per-day runs), both in process; then --repeat times through `dagster asset materialize
  --partition-range` on a persistent instance, as a user starts it.
Targets: minute day <= 10 s and >= 5x faster than pandas; the year query < 1 s; the week
<= 60 s.

    python bench/bench_pipeline.py [--devices 10] [--repeat 3] [--part all|minute|week]
                                   [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg
import duckdb

from energy_pipeline.catalog import build_catalog
from energy_pipeline.config import load_config
from energy_pipeline.defs.assets import build_assets
from energy_pipeline.defs.partitions import daily_partitions, minute_partitions
from energy_pipeline.defs.resources import EnergySite
from energy_pipeline.defs.sensors import RANGE_END_TAG, RANGE_START_TAG
from energy_pipeline.lake.files import atomic_write_parquet
from energy_pipeline.lake.layout import (
    FORECAST_FEATURES,
    RAW_READINGS,
    day_path,
    hour_dir,
    warehouse_path,
)
from energy_pipeline.lake.schemas import RAW_SCHEMA
from energy_pipeline.lake.warehouse import build_warehouse, query
from energy_pipeline.simulators.history import simulate_history
from energy_pipeline.transforms import quality
from energy_pipeline.transforms.minute import compute_minutes
from energy_pipeline.transforms.schemas import FEATURES_SCHEMA
from energy_pipeline.transforms.timegrid import day_window
from energy_pipeline.transforms.warehouse import TABLES

TZ = "Europe/Berlin"
METRICS = 61
ENERGY = "energy_active_import_total"
REPO = Path(__file__).resolve().parent.parent
DAILY_ASSETS = ["daily_readings", "daily_device_summary", "forecast_features", "csv_exports"]
WEEK = 7


def profile_yaml() -> str:
    points = [
        f"  - {{name: m{i:02d}, address: {i * 2}, data_type: float32, min: -1e6, max: 1e6}}"
        for i in range(METRICS - 2)
    ]
    points.append(f"  - {{name: power_active_total, address: {2 * METRICS}, data_type: float32}}")
    points.append(
        f"  - {{name: {ENERGY}, address: {2 * METRICS + 2}, data_type: float32, kind: counter}}"
    )
    return "manufacturer: Janitza\nmodel: UMG 509-PRO (bench)\npoints:\n" + "\n".join(points) + "\n"


def write_site(root: Path, devices: int) -> Path:
    (root / "bench_profile.yaml").write_text(profile_yaml())
    devs = "".join(
        f"  - {{id: umg{i:02d}, driver: modbus, profile: bench_profile.yaml, interval: 1,"
        f" connection: {{transport: tcp, host: 127.0.0.1, port: 502}}}}\n"
        for i in range(devices)
    )
    path = root / "site.yaml"
    path.write_text(
        f"site: {{name: bench, timezone: {TZ}, country: DE}}\n"
        f"storage: {{data_dir: data}}\ndevices:\n{devs}"
    )
    return path


def write_raw_day(data_dir: Path, start: datetime, end: datetime, devices: int) -> int:
    """1 s samples, one Parquet file per minute, as the collector seals them."""
    names = [f"m{i:02d}" for i in range(METRICS - 2)] + ["power_active_total", ENERGY]
    dev_names = pa.array([f"umg{i:02d}" for i in range(devices)])
    met_names = pa.array(names)
    per_second = devices * METRICS
    dev_idx = np.repeat(np.arange(devices, dtype=np.int32), METRICS)
    met_idx = np.tile(np.arange(METRICS, dtype=np.int32), devices)
    is_energy = met_idx == METRICS - 1
    rng = np.random.default_rng(7)
    t0 = int(start.timestamp())
    rows = 0
    minute = start
    while minute < end:
        base = int(minute.timestamp())
        secs = np.repeat(np.arange(base, base + 60, dtype=np.int64), per_second)
        values = rng.normal(230.0, 2.0, size=secs.size)
        energy = np.tile(is_energy, 60)
        values[energy] = (secs[energy] - t0) * 2.5 + np.tile(dev_idx, 60)[energy] * 1e6
        table = pa.table(
            {
                "ts": pa.array(secs * 1_000_000).cast(RAW_SCHEMA.field("ts").type),
                "device_id": pa.DictionaryArray.from_arrays(np.tile(dev_idx, 60), dev_names).cast(
                    pa.string()
                ),
                "metric": pa.DictionaryArray.from_arrays(np.tile(met_idx, 60), met_names).cast(
                    pa.string()
                ),
                "value": values,
            },
            schema=RAW_SCHEMA,
        )
        atomic_write_parquet(
            table, hour_dir(data_dir, RAW_READINGS, minute) / f"c1-{minute:%Y%m%dT%H%M}.parquet"
        )
        rows += table.num_rows
        minute += timedelta(minutes=1)
    return rows


def pandas_minutes(
    data_dir: Path, start: datetime, end: datetime, counters: set[str]
) -> pd.DataFrame:
    """The straightforward way: read every file, clean, group by minute in pandas."""
    files = sorted((data_dir / RAW_READINGS).glob("date=*/hour=*/*.parquet"))
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    df = df[(df.ts >= start) & (df.ts < end) & np.isfinite(df.value)]
    df = df.drop_duplicates(["device_id", "metric", "ts"])
    df["minute"] = df.ts.dt.floor("min")
    df = df.sort_values(["device_id", "metric", "ts"])
    agg = df.groupby(["device_id", "metric", "minute"]).value.agg(
        ["mean", "min", "max", "last", "count"]
    )
    cnt = df[df.metric.isin(counters)].copy()
    step = cnt.groupby(["device_id", "metric"]).value.diff()
    step = step.where(step >= 0, cnt.value)
    cnt["step"] = step
    delta = cnt.groupby(["device_id", "metric", "minute"]).step.sum(min_count=1)
    return agg.join(delta.rename("delta"))


def forecast_year(data_dir: Path, last_day, devices: int) -> int:
    """A year of synthetic forecast_features partitions (the query target, not computed)."""
    tz = ZoneInfo(TZ)
    rng = np.random.default_rng(3)
    rows = 0
    for i in range(365):
        day = last_day - timedelta(days=i)
        start, end = day_window(day, tz)
        slots = np.arange(int(start.timestamp()), int(end.timestamp()), 900, dtype=np.int64)
        n = slots.size * devices
        ts = np.tile(slots, devices) * 1_000_000
        local = np.array(
            [datetime.fromtimestamp(s, tz).replace(tzinfo=None) for s in slots],
            dtype="datetime64[us]",
        )
        target = rng.gamma(2.0, 50.0, n)
        table = pa.table(
            {
                "day": pa.array([day] * n, pa.date32()),
                "ts": pa.array(ts).cast(FEATURES_SCHEMA.field("ts").type),
                "local_ts": pa.array(np.tile(local, devices)),
                "device_id": np.repeat([f"umg{d:02d}" for d in range(devices)], slots.size),
                "target_metric": [ENERGY] * n,
                "target_kind": ["energy"] * n,
                "target": target,
                "minutes_present": pa.array(np.full(n, 15, np.int16)),
                "lag_1d": target * 0.9,
                "lag_7d": target * 1.1,
                "rolling_mean_1h": target,
                "rolling_mean_24h": target,
                "same_slot_mean_4w": target,
                "slot_of_day": pa.array(np.tile(np.arange(slots.size, dtype=np.int16), devices)),
                "hour": pa.array(np.tile(np.arange(slots.size, dtype=np.int8) // 4, devices)),
                "day_of_week": pa.array(np.full(n, day.weekday(), np.int8)),
                "is_weekend": pa.array(np.full(n, day.weekday() >= 5)),
                "is_holiday": pa.array(np.zeros(n, bool)),
                "outdoor_temp_c": rng.normal(8, 5, n),
            }
        ).cast(FEATURES_SCHEMA)
        atomic_write_parquet(table, day_path(data_dir, FORECAST_FEATURES, day))
        rows += n
    return rows


def median(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s (runs: {', '.join(f'{x:.2f}' for x in xs)})"


def minute_part(root: Path, devices: int, repeat: int) -> None:
    config = load_config(write_site(root, devices))
    tz = ZoneInfo(TZ)
    now = datetime.now(UTC)
    day = now.astimezone(tz).date() - timedelta(days=2)
    start, end = day_window(day, tz)
    print(
        f"bench_pipeline: {devices} devices x {METRICS} metrics, 1 s samples, local day "
        f"{day} ({TZ}), lake {config.data_dir}"
    )
    if not any((config.data_dir / RAW_READINGS).glob("date=*")):
        t = time.perf_counter()
        rows = write_raw_day(config.data_dir, start, end, devices)
        print(f"  raw data written: {rows:,} rows in 1,440 files, {time.perf_counter() - t:.1f} s")

    mp, dp = minute_partitions(config), daily_partitions(config)
    assets = build_assets(config, mp, dp)
    resources = {"site": EnergySite(config_path=str(config.path))}
    tags = {
        RANGE_START_TAG: mp.get_partition_key_for_timestamp(start.timestamp()),
        RANGE_END_TAG: mp.get_partition_key_for_timestamp((end - timedelta(minutes=1)).timestamp()),
    }
    instance = dg.DagsterInstance.ephemeral()
    catalog = build_catalog(config)
    minute_runs, daily_runs, transform_runs, pandas_runs = [], [], [], []
    for _ in range(repeat):
        t = time.perf_counter()
        result = dg.materialize(
            assets, selection=["minute_readings"], resources=resources, tags=tags, instance=instance
        )
        minute_runs.append(time.perf_counter() - t)
        assert result.success
        parts = len(result.asset_materializations_for_node("minute_readings"))
        t = time.perf_counter()
        result = dg.materialize(
            assets,
            selection=DAILY_ASSETS,
            resources=resources,
            partition_key=day.isoformat(),
            instance=instance,
        )
        daily_runs.append(time.perf_counter() - t)
        assert result.success
        t = time.perf_counter()
        table, _ = compute_minutes(config.data_dir, catalog, start, end, now)
        transform_runs.append(time.perf_counter() - t)
        del table
        gc.collect()
        t = time.perf_counter()
        frame = pandas_minutes(config.data_dir, start, end, {ENERGY})
        pandas_runs.append(time.perf_counter() - t)
        pandas_rows = len(frame)
        del frame
        gc.collect()
        print(
            f"  run {len(minute_runs)}: minute run {minute_runs[-1]:.2f} s, daily "
            f"{daily_runs[-1]:.2f} s, transform alone {transform_runs[-1]:.2f} s, "
            f"pandas {pandas_runs[-1]:.2f} s",
            flush=True,
        )
    floor_runs = dagster_floor(mp, tags, repeat)
    print(f"  minute_readings, {parts} partitions in one run: {median(minute_runs)}")
    print(f"  Dagster alone (no-op asset, same partitions and checks): {median(floor_runs)}")
    print(f"  daily assets for the day:                   {median(daily_runs)}")
    print(f"  the minute transform alone (no Dagster):    {median(transform_runs)}")
    print(f"  pandas, same minute work ({pandas_rows:,} rows): {median(pandas_runs)}")
    ratio = statistics.median(pandas_runs) / statistics.median(minute_runs)
    pure = statistics.median(pandas_runs) / statistics.median(transform_runs)
    print(
        f"  ratio pandas / Dagster minute run: {ratio:.1f}x, pandas / transform: {pure:.1f}x"
        "  (target >= 5x; minute day target <= 10 s)"
    )

    t = time.perf_counter()
    rows = forecast_year(config.data_dir, day - timedelta(days=1), devices)
    build_warehouse(config.data_dir, TABLES)
    print(f"  a year of forecast_features written: {rows:,} rows, {time.perf_counter() - t:.1f} s")
    q = (
        "SELECT device_id, hour, avg(target) AS mean_target, avg(lag_1d) AS mean_lag, count(*) "
        f"FROM forecast_features WHERE day >= DATE '{day}' - INTERVAL 365 DAY "
        "GROUP BY ALL ORDER BY ALL"
    )
    full = f"SELECT * FROM forecast_features WHERE day >= DATE '{day}' - INTERVAL 365 DAY"
    agg_runs, full_runs = [], []
    for _ in range(5):
        t = time.perf_counter()
        query(config.data_dir, q, TABLES)
        agg_runs.append(time.perf_counter() - t)
        t = time.perf_counter()
        with duckdb.connect(str(warehouse_path(config.data_dir)), read_only=True) as con:
            all_rows = con.sql(full).to_arrow_table().num_rows  # as a forecasting job loads it
        full_runs.append(time.perf_counter() - t)
    print(f"  year of forecast_features, aggregate query: {median(agg_runs)} (target < 1 s)")
    print(f"  year of forecast_features, all {all_rows:,} rows to Arrow: {median(full_runs)}")


def dagster_floor(
    partitions: dg.TimeWindowPartitionsDefinition, tags: dict[str, str], repeat: int
) -> list[float]:
    """The same range run of an asset that does nothing but report its three checks: what
    Dagster itself spends on 1,440 partitions (planned events, materializations and check
    evaluations per partition), the part of the minute run no asset code can cut."""
    names = (quality.NO_DUPLICATES, quality.WITHIN_BOUNDS, quality.COUNTERS_MONOTONIC)

    @dg.asset(
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[dg.AssetCheckSpec(n, asset="noop_minutes") for n in names],
    )
    def noop_minutes() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={"dagster/row_count": 0},
            check_results=[dg.AssetCheckResult(check_name=n, passed=True) for n in names],
        )

    instance = dg.DagsterInstance.ephemeral()
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        assert dg.materialize([noop_minutes], tags=tags, instance=instance).success
        runs.append(time.perf_counter() - t)
    return runs


def demo_week(root: Path) -> tuple[Path, list]:
    """The demo site's config in `root` and WEEK + 1 local days of simulated history ending at
    today's local midnight; returns the config path and the WEEK complete days after the first
    (whose weekly roll-ups then have days before them, as in a lake with history)."""
    path = root / "energy-pipeline.yaml"
    shutil.copy(REPO / "energy-pipeline.yaml", path)
    config = load_config(path)
    tz = ZoneInfo(config.site.timezone)
    today = datetime.now(UTC).astimezone(tz).date()
    end = day_window(today, tz)[0]
    first = today - timedelta(days=WEEK + 1)
    if not any((config.data_dir / RAW_READINGS).glob("date=*")):
        t = time.perf_counter()
        span = (end - day_window(first, tz)[0]).total_seconds() / 86400
        result = simulate_history(config, span, end=end, progress=None)
        print(
            f"  demo site history: {result.readings:,} readings of {result.devices} devices, "
            f"{first} to {today - timedelta(days=1)}, {time.perf_counter() - t:.1f} s"
        )
    return path, [first + timedelta(days=i) for i in range(1, WEEK + 1)]


def week_part(root: Path, repeat: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    print(f"bench_pipeline week: the demo site's daily assets over {WEEK} local days, lake {root}")
    path, days = demo_week(root)
    config = load_config(path)
    assets = build_assets(config, minute_partitions(config), daily_partitions(config))
    resources = {"site": EnergySite(config_path=str(path))}
    instance = dg.DagsterInstance.ephemeral()
    tags = {RANGE_START_TAG: days[0].isoformat(), RANGE_END_TAG: days[-1].isoformat()}
    range_runs, naive_runs = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        result = dg.materialize(
            assets, selection=DAILY_ASSETS, resources=resources, tags=tags, instance=instance
        )
        range_runs.append(time.perf_counter() - t)
        assert result.success
        steps = {
            e.step_key: e.event_specific_data.duration_ms / 1000
            for e in result.all_events
            if e.event_type_value == "STEP_SUCCESS"
        }
        t = time.perf_counter()
        for day in days:
            result = dg.materialize(
                assets,
                selection=DAILY_ASSETS,
                resources=resources,
                partition_key=day.isoformat(),
                instance=instance,
            )
            assert result.success
        naive_runs.append(time.perf_counter() - t)
        per_step = ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
        print(
            f"  run {len(range_runs)}: range run {range_runs[-1]:.2f} s ({per_step}), "
            f"{WEEK} per-day runs {naive_runs[-1]:.2f} s",
            flush=True,
        )
    span = f"{days[0]}...{days[-1]}"
    print(f"  {WEEK} days x 4 daily assets, ONE range run ({span}): {median(range_runs)}")
    print(f"  the naive way, {WEEK} per-day runs:                      {median(naive_runs)}")
    ratio = statistics.median(naive_runs) / statistics.median(range_runs)
    print(f"  ratio per-day runs / range run: {ratio:.1f}x")
    home = root / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "ENERGY_PIPELINE_CONFIG": str(path)}
    dagster = Path(sys.executable).parent / "dagster"
    command = [str(dagster), "asset", "materialize", "-m", "energy_pipeline.definitions"]
    command += ["-a", "defs", "--select", ",".join(DAILY_ASSETS), "--partition-range", span]
    cli_runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        proc = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        cli_runs.append(time.perf_counter() - t)
        assert proc.returncode == 0, proc.stderr[-3000:]
    print(
        f"  the same range through `dagster asset materialize --partition-range` (new process, "
        f"persistent instance): {median(cli_runs)} (target <= 60 s)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--part", choices=("all", "minute", "week"), default="all")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    root.mkdir(parents=True, exist_ok=True)
    if args.part in ("all", "minute"):
        minute_part(root, args.devices, args.repeat)
    if args.part in ("all", "week"):
        week_part(root / "week", args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
