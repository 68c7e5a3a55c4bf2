"""Asset checks, evaluated inside the asset on the files it just wrote (so a partitioned run
checks exactly its own window). Blocking checks stop downstream assets in the same run."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa

from energy_pipeline.catalog import Catalog
from energy_pipeline.lake.layout import (
    DAILY_DEVICE_SUMMARY,
    DAILY_READINGS,
    FORECAST_FEATURES,
    MINUTE_READINGS,
)

NO_DUPLICATES = "no_duplicate_rows"
WITHIN_BOUNDS = "values_within_profile_bounds"
COUNTERS_MONOTONIC = "counters_never_decrease"
FULL_GRID = "one_row_per_minute_of_the_day"
COMPLETENESS = "daily_completeness"
NULL_RATES = "feature_null_rates"

COMPLETENESS_WARN = 99.0
COMPLETENESS_ERROR = 90.0
TARGET_NULL_WARN = 0.10


def minute_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            NO_DUPLICATES,
            asset=MINUTE_READINGS,
            blocking=True,
            description="no (device, metric, ts) twice in the window just written",
        ),
        dg.AssetCheckSpec(
            WITHIN_BOUNDS,
            asset=MINUTE_READINGS,
            blocking=True,
            description="every min/max inside the profile's valid range",
        ),
        dg.AssetCheckSpec(
            COUNTERS_MONOTONIC,
            asset=MINUTE_READINGS,
            description="counter readings only fall where a reset/rollover was detected",
        ),
    ]


def _files_sql(files: list[Path]) -> str:
    paths = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    return f"read_parquet([{paths}], hive_partitioning = false)"


def minute_checks(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    start_us: int,
    end_us: int,
    catalog: Catalog,
) -> list[dg.AssetCheckResult]:
    if not files:
        return [
            dg.AssetCheckResult(check_name=name, passed=True, metadata={"rows": 0})
            for name in (NO_DUPLICATES, WITHIN_BOUNDS, COUNTERS_MONOTONIC)
        ]
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW written AS SELECT * FROM {_files_sql(files)} "
        f"WHERE epoch_us(ts) >= {start_us - 60_000_000} AND epoch_us(ts) < {end_us}"
    )
    dups = con.execute(
        f"""SELECT count(*) FROM (SELECT device_id, metric, ts FROM written
            WHERE epoch_us(ts) >= {start_us} GROUP BY ALL HAVING count(*) > 1)"""
    ).fetchall()[0][0]
    series = con.execute("SELECT DISTINCT device_id, metric FROM written").fetchall()
    con.register("check_bounds", catalog.bounds_table(series))
    outside = con.execute(
        f"""SELECT count(*) FROM written w JOIN check_bounds b USING (device_id, metric)
            WHERE epoch_us(w.ts) >= {start_us}
              AND ((b.lo IS NOT NULL AND w.min < b.lo) OR (b.hi IS NOT NULL AND w.max > b.hi))"""
    ).fetchall()[0][0]
    decreases = con.execute(
        f"""SELECT count(*) FROM (
              SELECT w.ts, w.last, w.resets,
                lag(w.last) OVER (PARTITION BY w.device_id, w.metric ORDER BY w.ts) AS prev
              FROM written w JOIN check_bounds b USING (device_id, metric)
              WHERE b.is_counter)
            WHERE epoch_us(ts) >= {start_us} AND last < prev AND resets = 0"""
    ).fetchall()[0][0]
    return [
        dg.AssetCheckResult(
            check_name=NO_DUPLICATES, passed=dups == 0, metadata={"duplicate_keys": int(dups)}
        ),
        dg.AssetCheckResult(
            check_name=WITHIN_BOUNDS,
            passed=outside == 0,
            metadata={"rows_outside_bounds": int(outside)},
        ),
        dg.AssetCheckResult(
            check_name=COUNTERS_MONOTONIC,
            passed=decreases == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"unexplained_decreases": int(decreases)},
        ),
    ]


def daily_readings_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            FULL_GRID,
            asset=DAILY_READINGS,
            blocking=True,
            description="every (device, metric) has exactly one row per minute of the local "
            "day (1,380 or 1,500 on DST days)",
        )
    ]


def daily_readings_checks(table: pa.Table, minutes_in_day: int) -> list[dg.AssetCheckResult]:
    con = duckdb.connect()
    con.register("t", table)
    bad = con.execute(
        f"""SELECT count(*) FROM (SELECT device_id, metric, count(DISTINCT ts) AS n, count(*) AS r
            FROM t GROUP BY ALL) WHERE n <> {minutes_in_day} OR r <> {minutes_in_day}"""
    ).fetchall()[0][0]
    return [
        dg.AssetCheckResult(
            check_name=FULL_GRID,
            passed=bad == 0,
            metadata={"minutes_in_day": minutes_in_day, "series_with_wrong_grid": int(bad)},
        )
    ]


def summary_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            COMPLETENESS,
            asset=DAILY_DEVICE_SUMMARY,
            description=f"every device has ≥ {COMPLETENESS_WARN:g} % of its expected minutes "
            f"(warning below, error below {COMPLETENESS_ERROR:g} %)",
        )
    ]


def summary_checks(table: pa.Table) -> list[dg.AssetCheckResult]:
    rows = table.select(["device_id", "completeness_pct"]).to_pylist()
    worst = min((r["completeness_pct"] for r in rows), default=100.0)
    low = {
        r["device_id"]: round(r["completeness_pct"], 2)
        for r in rows
        if r["completeness_pct"] < COMPLETENESS_WARN
    }
    severity = (
        dg.AssetCheckSeverity.ERROR if worst < COMPLETENESS_ERROR else dg.AssetCheckSeverity.WARN
    )
    return [
        dg.AssetCheckResult(
            check_name=COMPLETENESS,
            passed=worst >= COMPLETENESS_WARN,
            severity=severity,
            metadata={
                "worst_pct": float(worst),
                "devices_below_99_pct": dg.MetadataValue.json(low),
            },
        )
    ]


def feature_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            NULL_RATES,
            asset=FORECAST_FEATURES,
            description=f"target null in ≤ {TARGET_NULL_WARN:.0%} of slots; "
            "null rates of every feature reported",
        )
    ]


def feature_checks(table: pa.Table) -> list[dg.AssetCheckResult]:
    n = table.num_rows
    rates = {
        name: (table.column(name).null_count / n if n else 0.0)
        for name in table.column_names
        if table.schema.field(name).nullable
    }
    return [
        dg.AssetCheckResult(
            check_name=NULL_RATES,
            passed=rates.get("target", 0.0) <= TARGET_NULL_WARN,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "rows": n,
                "null_rates": dg.MetadataValue.json({k: round(v, 4) for k, v in rates.items()}),
            },
        )
    ]
