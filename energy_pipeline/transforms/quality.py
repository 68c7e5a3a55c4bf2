"""Data-quality checks of the tables the pipeline writes: plain outcomes, computed in DuckDB or
Arrow over exactly the window a run just wrote. `defs.checks` turns them into asset checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from energy_pipeline.catalog import Catalog
from energy_pipeline.catalog.tables import bounds_table

NO_DUPLICATES = "no_duplicate_rows"
WITHIN_BOUNDS = "values_within_profile_bounds"
COUNTERS_MONOTONIC = "counters_never_decrease"
FULL_GRID = "one_row_per_minute_of_the_day"
COMPLETENESS = "daily_completeness"
NULL_RATES = "feature_null_rates"

COMPLETENESS_WARN = 99.0
COMPLETENESS_ERROR = 90.0
TARGET_NULL_WARN = 0.10


@dataclass(frozen=True, slots=True)
class Outcome:
    """One check's verdict; a failed WARN check is reported but blocks nothing."""

    name: str
    passed: bool
    metadata: dict[str, object] = field(default_factory=dict)
    severity: Literal["ERROR", "WARN"] = "ERROR"


def _files_sql(files: list[Path]) -> str:
    paths = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    return f"read_parquet([{paths}], hive_partitioning = false)"


def minute_quality(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    start_us: int,
    end_us: int,
    catalog: Catalog,
) -> list[Outcome]:
    """No duplicate keys, values within the profile's bounds, counters that only fall on a
    detected reset; over the minute_readings files of [start_us, end_us)."""
    if not files:
        return [
            Outcome(name, True, {"rows": 0})
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
    con.register("check_bounds", bounds_table(catalog, series))
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
        Outcome(NO_DUPLICATES, dups == 0, {"duplicate_keys": int(dups)}),
        Outcome(WITHIN_BOUNDS, outside == 0, {"rows_outside_bounds": int(outside)}),
        Outcome(
            COUNTERS_MONOTONIC,
            decreases == 0,
            {"unexplained_decreases": int(decreases)},
            severity="WARN",
        ),
    ]


def full_grid(table: pa.Table, minutes_in_day: int) -> list[Outcome]:
    """Every (device, metric) of a daily_readings day has exactly one row per minute."""
    con = duckdb.connect()
    con.register("t", table)
    bad = con.execute(
        f"""SELECT count(*) FROM (SELECT device_id, metric, count(DISTINCT ts) AS n, count(*) AS r
            FROM t GROUP BY ALL) WHERE n <> {minutes_in_day} OR r <> {minutes_in_day}"""
    ).fetchall()[0][0]
    return [
        Outcome(
            FULL_GRID,
            bad == 0,
            {"minutes_in_day": minutes_in_day, "series_with_wrong_grid": int(bad)},
        )
    ]


def completeness(table: pa.Table) -> list[Outcome]:
    """The worst device's completeness of a daily_device_summary day."""
    rows = table.select(["device_id", "completeness_pct"]).to_pylist()
    worst = min((r["completeness_pct"] for r in rows), default=100.0)
    low = {
        r["device_id"]: round(r["completeness_pct"], 2)
        for r in rows
        if r["completeness_pct"] < COMPLETENESS_WARN
    }
    return [
        Outcome(
            COMPLETENESS,
            worst >= COMPLETENESS_WARN,
            {"worst_pct": float(worst), "devices_below_99_pct": low},
            severity="ERROR" if worst < COMPLETENESS_ERROR else "WARN",
        )
    ]


def null_rates(table: pa.Table) -> list[Outcome]:
    """The null rate of every nullable forecast_features column; the target's is bounded."""
    n = table.num_rows
    rates = {
        name: (table.column(name).null_count / n if n else 0.0)
        for name in table.column_names
        if table.schema.field(name).nullable
    }
    return [
        Outcome(
            NULL_RATES,
            rates.get("target", 0.0) <= TARGET_NULL_WARN,
            {"rows": n, "null_rates": {k: round(v, 4) for k, v in rates.items()}},
            severity="WARN",
        )
    ]


def over_days(days: list[tuple[str, list[Outcome]]]) -> list[Outcome]:
    """One outcome per check over a range run's days (Dagster's check results carry no
    partition): failed if any day failed, with the worst failing severity; metadata lists the
    failed days and each day's figures."""
    by_name: dict[str, list[tuple[str, Outcome]]] = {}
    for day, outcomes in days:
        for outcome in outcomes:
            by_name.setdefault(outcome.name, []).append((day, outcome))
    merged = []
    for name, seen in by_name.items():
        failed = [(day, o) for day, o in seen if not o.passed]
        severity = "ERROR" if any(o.severity == "ERROR" for _, o in failed) else "WARN"
        if len(seen) == 1:
            merged.append(seen[0][1])
            continue
        merged.append(
            Outcome(
                name,
                not failed,
                {
                    "days": len(seen),
                    "failed_days": [day for day, _ in failed],
                    "by_day": {day: o.metadata for day, o in seen},
                },
                severity if failed else seen[-1][1].severity,
            )
        )
    return merged


MODEL_BEATS_BASELINE = "model_beats_seasonal_naive"


def beats_baseline(accuracy: pa.Table, model: str, baseline: str) -> list[Outcome]:
    """The learned model's backtest MAE is below the seasonal naive's for every device (a
    warning otherwise: the baseline's forecast is still there to use)."""
    rows = [r for r in accuracy.to_pylist() if r["model"] == model]
    skills = {r["device_id"]: r["skill_vs_naive"] for r in rows}
    losing = sorted(d for d, s in skills.items() if s is not None and s <= 0)
    untested = sorted(d for d, s in skills.items() if s is None)
    return [
        Outcome(
            MODEL_BEATS_BASELINE,
            not losing,
            {
                "skill_vs_naive": skills,
                "not_better": losing,
                "too_little_history": untested,
                "baseline": baseline,
            },
            "WARN",
        )
    ]
