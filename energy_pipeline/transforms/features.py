"""Forecasting features per device and 15-minute slot of a local day.

The target is the slot's energy (sum of counter deltas) where the device has an energy counter,
else its mean power. History comes from earlier `daily_readings` partitions (28 days back), so
lags are null where those days were never materialized. Lags and windows are in absolute time
(1 day = 24 h), which keeps them unambiguous on DST days; the rolling means cover the slots
before the current one, so no feature leaks the target.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import holidays
import pyarrow as pa

from energy_pipeline.catalog import Catalog
from energy_pipeline.lake.layout import DAILY_READINGS
from energy_pipeline.lake.scan import day_files
from energy_pipeline.transforms.minute import connect
from energy_pipeline.transforms.schemas import FEATURES_SCHEMA
from energy_pipeline.transforms.timegrid import day_window

HISTORY_DAYS = 28


@cache
def _holiday_calendar(country: str) -> holidays.HolidayBase:
    return holidays.country_holidays(country)


def is_holiday(day: date, country: str | None) -> bool:
    return bool(country) and day in _holiday_calendar(country.upper())  # type: ignore[union-attr]


def history_files(data_dir: Path, day: date, days: int = HISTORY_DAYS) -> list[Path]:
    """daily_readings files of the `days` before `day` that exist."""
    return day_files(
        data_dir, DAILY_READINGS, [day - timedelta(days=i) for i in range(days, 0, -1)]
    )


def forecast_features(
    today: pa.Table,
    history: list[Path],
    day: date,
    tz: ZoneInfo,
    catalog: Catalog,
    country: str | None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Feature rows for the slots of `day`; `today` is that day's daily_readings table."""
    con = con or connect()
    con.register("today", today)
    series: dict[str, set[str]] = {}
    for device_id, metric in con.execute("SELECT DISTINCT device_id, metric FROM today").fetchall():
        series.setdefault(device_id, set()).add(metric)
    targets = {d: catalog.target(d, m) for d, m in series.items()}
    site_outdoor = next(
        (
            (d, catalog.outdoor_metric(m))
            for d, m in sorted(series.items())
            if catalog.outdoor_metric(m)
        ),
        (None, None),
    )
    rows = {
        "device_id": [],
        "target_metric": [],
        "target_kind": [],
        "temp_device": [],
        "temp_metric": [],
    }
    for device_id, target in sorted(targets.items()):
        if target is None:
            continue
        own = catalog.outdoor_metric(series[device_id])
        rows["device_id"].append(device_id)
        rows["target_metric"].append(target[0])
        rows["target_kind"].append(target[1])
        rows["temp_device"].append(device_id if own else site_outdoor[0])
        rows["temp_metric"].append(own or site_outdoor[1])
    con.register("targets", pa.table(rows, schema=pa.schema([(k, pa.string()) for k in rows])))
    _readings_view(con, history, {*rows["target_metric"], *filter(None, rows["temp_metric"])})
    holiday = is_holiday(day, country)
    start, end = day_window(day, tz)
    table = con.sql(
        f"""WITH slots AS (
              SELECT r.device_id, time_bucket(INTERVAL 15 MINUTE, r.ts) AS ts,
                min(r.local_ts) AS local_ts, min(r.minute_of_day) // 15 AS slot_of_day,
                min(r.hour) AS hour, min(r.day_of_week) AS day_of_week,
                bool_or(r.is_weekend) AS is_weekend,
                CASE WHEN any_value(t.target_kind) = 'energy'
                     THEN sum(r.delta) ELSE avg(r.avg) END AS target,
                count(*) FILTER (WHERE r.count > 0) AS minutes_present
              FROM readings r JOIN targets t
                ON r.device_id = t.device_id AND r.metric = t.target_metric
              GROUP BY r.device_id, time_bucket(INTERVAL 15 MINUTE, r.ts)),
            temps AS (
              SELECT t.device_id, time_bucket(INTERVAL 15 MINUTE, r.ts) AS ts,
                avg(r.avg) AS outdoor_temp_c
              FROM readings r JOIN targets t
                ON r.device_id = t.temp_device AND r.metric = t.temp_metric
              WHERE r.ts >= '{start.isoformat()}' AND r.ts < '{end.isoformat()}'
              GROUP BY ALL),
            windows AS (
              SELECT *,
                avg(target) OVER (PARTITION BY device_id ORDER BY ts
                  RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW
                  EXCLUDE CURRENT ROW) AS rolling_mean_1h,
                avg(target) OVER (PARTITION BY device_id ORDER BY ts
                  RANGE BETWEEN INTERVAL 24 HOUR PRECEDING AND CURRENT ROW
                  EXCLUDE CURRENT ROW) AS rolling_mean_24h
              FROM slots)
        SELECT DATE '{day.isoformat()}' AS day, w.ts, w.local_ts, w.device_id,
          t.target_metric, t.target_kind, w.target, w.minutes_present::SMALLINT AS minutes_present,
          d1.target AS lag_1d, d7.target AS lag_7d, w.rolling_mean_1h, w.rolling_mean_24h,
          (SELECT avg(h.target) FROM slots h WHERE h.device_id = w.device_id
             AND h.ts IN (w.ts - INTERVAL 7 DAY, w.ts - INTERVAL 14 DAY,
                          w.ts - INTERVAL 21 DAY, w.ts - INTERVAL 28 DAY)) AS same_slot_mean_4w,
          w.slot_of_day, w.hour, w.day_of_week, w.is_weekend, {holiday} AS is_holiday,
          tp.outdoor_temp_c
        FROM windows w
        JOIN targets t ON t.device_id = w.device_id
        LEFT JOIN slots d1 ON d1.device_id = w.device_id AND d1.ts = w.ts - INTERVAL 1 DAY
        LEFT JOIN slots d7 ON d7.device_id = w.device_id AND d7.ts = w.ts - INTERVAL 7 DAY
        LEFT JOIN temps tp ON tp.device_id = w.device_id AND tp.ts = w.ts
        WHERE w.ts >= '{start.isoformat()}' AND w.ts < '{end.isoformat()}'
        ORDER BY w.device_id, w.ts"""
    ).to_arrow_table()
    return table.select(FEATURES_SCHEMA.names).cast(FEATURES_SCHEMA)


def _readings_view(con: duckdb.DuckDBPyConnection, history: list[Path], metrics: set[str]) -> None:
    """View `readings`: today and the history days, only the rows of `metrics` (the targets and
    temperatures), so the scan of up to 28 history files decodes a few series, not every one."""
    wanted = ", ".join("'" + m.replace("'", "''") + "'" for m in sorted(metrics)) or "NULL"
    days = "SELECT * FROM today"
    if history:
        paths = ", ".join("'" + str(p).replace("'", "''") + "'" for p in history)
        days += (
            f" UNION ALL BY NAME SELECT * FROM read_parquet([{paths}], union_by_name = true,"
            " hive_partitioning = false)"
        )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW readings AS SELECT * FROM ({days}) WHERE metric IN ({wanted})"
    )
