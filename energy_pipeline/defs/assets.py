"""The assets: raw_readings (external), minute_readings, the daily tables, exports, warehouse.

No I/O managers: each asset writes its own Parquet (hive folders from UTC instants, exactly its
own window) and returns a `MaterializeResult` with row count, column schema, path, a preview
and what was dropped or skipped, plus its checks' results.
"""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from energy_pipeline.config import Config
from energy_pipeline.defs import checks
from energy_pipeline.defs.resources import EnergySite
from energy_pipeline.lake.layout import (
    DAILY_DEVICE_SUMMARY,
    DAILY_READINGS,
    FORECAST_FEATURES,
    MINUTE_READINGS,
    RAW_READINGS,
    exports_dir,
    hour_dir,
    table_dir,
)
from energy_pipeline.transforms.daily import daily_readings, daily_summary, minute_source
from energy_pipeline.transforms.exports import export_day, prune_exports, stored_day
from energy_pipeline.transforms.features import forecast_features, history_files
from energy_pipeline.transforms.lakefiles import (
    PART_FILE,
    existing,
    hours_of,
    partition_path,
    write_hourly,
    write_partition,
)
from energy_pipeline.transforms.minute import MinuteStats, compute_minutes, connect
from energy_pipeline.transforms.schemas import (
    DAILY_READINGS_SCHEMA,
    FEATURES_SCHEMA,
    MINUTE_SCHEMA,
    SUMMARY_SCHEMA,
)
from energy_pipeline.transforms.timegrid import day_window
from energy_pipeline.transforms.warehouse import build_warehouse

OWNERS = ["team:energy"]
LAKE_GROUP = "lake"
DAILY_GROUP = "daily"
SERVING_GROUP = "serving"
WAREHOUSE_POOL = "warehouse"
PREVIEW_ROWS = 10
CHUNK = timedelta(days=1)


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(f.name, str(f.type), description=None) for f in schema]
    )


def preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    head = table.slice(0, rows).to_pylist()
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in head:
        lines.append("| " + " | ".join(_md(row[n]) for n in names) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _md(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    return "" if value is None else str(value).replace("|", "\\|")


def table_metadata(table: pa.Table, schema: pa.Schema, path: object, rows: int | None = None):
    return {
        "dagster/row_count": table.num_rows if rows is None else rows,
        "dagster/column_schema": column_schema(schema),
        "path": dg.MetadataValue.path(str(path)),
        "preview": preview(table),
    }


def _problems(context: dg.AssetExecutionContext, problems: list[str]) -> dg.MetadataValue:
    for problem in problems:
        context.log.warning(f"lake file skipped: {problem}")
    return dg.MetadataValue.json(problems[:50])


def _days(context: dg.AssetExecutionContext, site: EnergySite) -> Iterator[date]:
    """Local days of the run's partition window (one, or several in a range run)."""
    window = context.partition_time_window
    day = window.start.astimezone(site.tz).date()
    last = (window.end - timedelta(seconds=1)).astimezone(site.tz).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def raw_readings_spec(config: Config) -> dg.AssetSpec:
    return dg.AssetSpec(
        RAW_READINGS,
        description=(
            "The collectors' landing zone: one row per device, metric and sampled instant, "
            "sealed into `raw_readings/date=/hour=` Parquet by minute. Written only by "
            "`energy-pipeline collect`; Dagster observes it (the sensor records each advance "
            "of the sealed watermark), so a dead collector turns this asset red."
        ),
        group_name=LAKE_GROUP,
        kinds={"parquet"},
        owners=OWNERS,
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(minutes=config.pipeline.raw_freshness_minutes),
            warn_window=timedelta(minutes=max(1, config.pipeline.raw_freshness_minutes // 2)),
        ),
        metadata={"path": dg.MetadataValue.path(str(table_dir(config.data_dir, RAW_READINGS)))},
    )


def build_assets(
    config: Config,
    minute_parts: dg.TimeWindowPartitionsDefinition,
    daily_parts: dg.DailyPartitionsDefinition,
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    minute_to_daily = dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)

    @dg.asset(
        name=MINUTE_READINGS,
        partitions_def=minute_parts,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1440),
        deps=[RAW_READINGS],
        group_name=LAKE_GROUP,
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        check_specs=checks.minute_specs(),
        description=(
            "Per device, metric and minute: avg, min, max, last, count. Cleaned first "
            "(misfiled, future, non-finite and out-of-profile-range readings dropped and "
            "counted; repeats de-duplicated); counters as deltas with reset/rollover "
            "detection, never averaged. One run handles its whole partition range in one "
            "DuckDB query per day."
        ),
    )
    def minute_readings(context: dg.AssetExecutionContext, site: EnergySite):
        window = context.partition_time_window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        con = connect()
        totals = MinuteStats()
        rows = 0
        last_table = MINUTE_SCHEMA.empty_table()
        chunk = start
        while chunk < end:
            chunk_end = min(end, chunk + CHUNK)
            table, stats = compute_minutes(
                site.data_dir, site.catalog, chunk, chunk_end, site.now(), con
            )
            write_hourly(site.data_dir, MINUTE_READINGS, table, chunk, chunk_end, MINUTE_SCHEMA)
            rows += table.num_rows
            last_table = table if table.num_rows else last_table
            _add(totals, stats)
            chunk = chunk_end
        files = existing(
            [hour_dir(site.data_dir, MINUTE_READINGS, h) / PART_FILE for h in hours_of(start, end)]
        )
        results = checks.minute_checks(con, files, _us(start), _us(end), site.catalog)
        meta = table_metadata(
            last_table, MINUTE_SCHEMA, table_dir(site.data_dir, MINUTE_READINGS), rows
        )
        meta.update(
            {
                "window_start": start.isoformat(),
                "window_end": end.isoformat(),
                "raw_files": totals.files,
                "raw_rows_read": totals.rows_read,
                "dropped_misfiled": totals.misfiled,
                "dropped_future": totals.future,
                "dropped_invalid": totals.invalid,
                "dropped_out_of_range": totals.out_of_range,
                "duplicates_removed": totals.duplicates,
                "counter_resets": totals.resets,
                "skipped_files": _problems(context, totals.skipped_files),
            }
        )
        return dg.MaterializeResult(metadata=meta, check_results=results)

    @dg.asset(
        name=DAILY_READINGS,
        partitions_def=daily_parts,
        deps=[dg.AssetDep(MINUTE_READINGS, partition_mapping=minute_to_daily)],
        group_name=DAILY_GROUP,
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        check_specs=checks.daily_readings_specs(),
        description=(
            "The local day's 1-minute grid per device and metric, gaps explicit (count 0), with "
            "the temporal markers (minute_of_day, minutes_elapsed, marker_5/10/15/30/60min, "
            "hour, day_of_week, is_weekend). Hours missing from minute_readings (older than "
            "its window) are computed from raw_readings with the same transform."
        ),
    )
    def daily_readings_asset(context: dg.AssetExecutionContext, site: EnergySite):
        results: list[dg.AssetCheckResult] = []
        meta: dict[str, object] = {}
        for day in _days(context, site):
            start, end = day_window(day, site.tz)
            con = connect()
            src = minute_source(site.data_dir, site.catalog, start, end, site.now(), con)
            table = daily_readings(src.table, day, site.tz, con)
            path = write_partition(
                site.data_dir, DAILY_READINGS, start, table, DAILY_READINGS_SCHEMA
            )
            minutes_in_day = int((end - start).total_seconds() // 60)
            results = checks.daily_readings_checks(table, minutes_in_day)
            meta = table_metadata(table, DAILY_READINGS_SCHEMA, path)
            dropped = MinuteStats()
            for stats in src.raw_stats:
                _add(dropped, stats)
            meta.update(
                {
                    "day": day.isoformat(),
                    "minutes_in_day": minutes_in_day,
                    "hours_from_minute_readings": src.from_minute_table,
                    "hours_computed_from_raw": len(src.from_raw),
                    "dropped_from_raw": dg.MetadataValue.json(
                        {k: v for k, v in dropped.as_dict().items() if k != "skipped_files"}
                    ),
                    "skipped_files": _problems(context, src.skipped_files),
                }
            )
        return dg.MaterializeResult(metadata=meta, check_results=results)

    @dg.asset(
        name=DAILY_DEVICE_SUMMARY,
        partitions_def=daily_parts,
        deps=[DAILY_READINGS],
        group_name=DAILY_GROUP,
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        check_specs=checks.summary_specs(),
        description=(
            "Per device and local day: energy (sum of counter deltas, resets counted), peak "
            "15-minute mean power, min/max/avg of the power metric and of every metric, "
            "completeness (% of expected minutes present)."
        ),
    )
    def daily_device_summary(context: dg.AssetExecutionContext, site: EnergySite):
        results: list[dg.AssetCheckResult] = []
        meta: dict[str, object] = {}
        for day in _days(context, site):
            start, _ = day_window(day, site.tz)
            readings = _read_day(site, DAILY_READINGS, start, DAILY_READINGS_SCHEMA)
            present = readings.filter(pa.compute.greater(readings.column("count"), 0))
            table = daily_summary(present, day, site.tz, site.catalog, site.device_ids)
            path = write_partition(
                site.data_dir, DAILY_DEVICE_SUMMARY, start, table, SUMMARY_SCHEMA
            )
            results = checks.summary_checks(table)
            meta = table_metadata(table, SUMMARY_SCHEMA, path)
            meta["day"] = day.isoformat()
        return dg.MaterializeResult(metadata=meta, check_results=results)

    @dg.asset(
        name=FORECAST_FEATURES,
        partitions_def=daily_parts,
        deps=[DAILY_READINGS],
        group_name=DAILY_GROUP,
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        check_specs=checks.feature_specs(),
        description=(
            "Per device and 15-minute slot: the target (energy from counter deltas, else mean "
            "power), lags of 1 and 7 days, rolling 1 h and 24 h means of earlier slots, the "
            "same slot's mean over the last 4 weeks, calendar features (hour, weekday, "
            "weekend, holiday from site.country) and outdoor temperature where reported."
        ),
    )
    def forecast_features_asset(context: dg.AssetExecutionContext, site: EnergySite):
        results: list[dg.AssetCheckResult] = []
        meta: dict[str, object] = {}
        for day in _days(context, site):
            start, _ = day_window(day, site.tz)
            today = _read_day(site, DAILY_READINGS, start, DAILY_READINGS_SCHEMA)
            history = history_files(site.data_dir, day, site.tz)
            table = forecast_features(
                today, history, day, site.tz, site.catalog, site.config.site.country
            )
            path = write_partition(site.data_dir, FORECAST_FEATURES, start, table, FEATURES_SCHEMA)
            results = checks.feature_checks(table)
            meta = table_metadata(table, FEATURES_SCHEMA, path)
            meta.update({"day": day.isoformat(), "history_days_found": len(history)})
        return dg.MaterializeResult(metadata=meta, check_results=results)

    @dg.asset(
        name="csv_exports",
        partitions_def=daily_parts,
        deps=[DAILY_READINGS],
        group_name=SERVING_GROUP,
        kinds={"csv"},
        owners=OWNERS,
        description=(
            "The seeds' CSV files per device and local day: PROGNOZA "
            "`exports/<device>_readings_YYYY-MM-DD.csv` (local ms timestamps, minutes_elapsed, "
            "markers, one column per metric) and the Luxtronik-logger roll-ups "
            "`exports/<device>/YYYY-MM-DD_daily.csv` / `_weekly.csv`; files older than "
            "pipeline.export_retention_days are deleted."
        ),
    )
    def csv_exports(context: dg.AssetExecutionContext, site: EnergySite):
        written = []
        for day in _days(context, site):
            load = stored_day(site.data_dir, site.tz)
            written += export_day(exports_dir(site.data_dir), day, load)
        today = site.now().astimezone(site.tz).date()
        removed = prune_exports(
            exports_dir(site.data_dir), today, site.config.pipeline.export_retention_days
        )
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(exports_dir(site.data_dir))),
                "files_written": dg.MetadataValue.json([str(p) for p in written]),
                "files_removed": len(removed),
            }
        )

    @dg.asset(
        name="warehouse",
        deps=[MINUTE_READINGS, DAILY_READINGS, DAILY_DEVICE_SUMMARY, FORECAST_FEATURES],
        group_name=SERVING_GROUP,
        kinds={"duckdb"},
        owners=OWNERS,
        pool=WAREHOUSE_POOL,
        description=(
            "`warehouse.duckdb`: one view per table (raw_readings, polls, minute_readings, "
            "daily_readings, daily_device_summary, forecast_features) over the Parquet, with "
            "absolute paths and pinned hive types; built as a new file and swapped in "
            "atomically. Query it with `energy-pipeline sql`."
        ),
    )
    def warehouse(context: dg.AssetExecutionContext, site: EnergySite):
        path, counts = build_warehouse(site.data_dir)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "rows_per_view": dg.MetadataValue.json(counts),
            }
        )

    return [
        raw_readings_spec(config),
        minute_readings,
        daily_readings_asset,
        daily_device_summary,
        forecast_features_asset,
        csv_exports,
        warehouse,
    ]


def _us(instant: datetime) -> int:
    return int(instant.timestamp() * 1_000_000)


def _add(total: MinuteStats, stats: MinuteStats) -> None:
    for key, value in stats.as_dict().items():
        if isinstance(value, int):
            setattr(total, key, getattr(total, key) + value)
    total.skipped_files += stats.skipped_files


def _read_day(site: EnergySite, table: str, start: datetime, schema: pa.Schema) -> pa.Table:
    path = partition_path(site.data_dir, table, start)
    if not path.is_file():
        raise dg.Failure(
            f"{path} is missing: materialize {table} for this day first",
            metadata={"path": dg.MetadataValue.path(str(path))},
        )
    return pq.read_table(path, schema=schema)
