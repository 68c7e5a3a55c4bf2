"""The assets: raw_readings (external), minute_readings, the daily tables, exports, warehouse.

Thin on purpose: each asset is one small function that asks `transforms/` for its table and
`lake/` to store it (hive folders from UTC instants, exactly its own window), and returns a
`MaterializeResult` with row count, column schema, path, a preview and what was dropped or
skipped, plus its checks' results. No I/O managers. The daily tables share one per-day loop.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial

import dagster as dg
import pyarrow as pa

from energy_pipeline.config import Config
from energy_pipeline.defs import checks
from energy_pipeline.defs.metadata import problems, table_metadata
from energy_pipeline.defs.resources import EnergySite
from energy_pipeline.lake.exports import prune_exports, write_exports
from energy_pipeline.lake.layout import (
    DAILY_DEVICE_SUMMARY,
    DAILY_READINGS,
    FORECAST_FEATURES,
    MINUTE_READINGS,
    RAW_READINGS,
    exports_dir,
    partition_path,
    table_dir,
)
from energy_pipeline.lake.scan import hourly_files, read_partition
from energy_pipeline.lake.tables import write_hourly, write_partition
from energy_pipeline.lake.warehouse import build_warehouse
from energy_pipeline.transforms import quality
from energy_pipeline.transforms.daily import daily_readings, daily_summary, minute_source
from energy_pipeline.transforms.exports import export_files, stored_day
from energy_pipeline.transforms.features import forecast_features, history_files
from energy_pipeline.transforms.minute import MinuteStats, compute_minutes, connect
from energy_pipeline.transforms.schemas import (
    DAILY_READINGS_SCHEMA,
    FEATURES_SCHEMA,
    MINUTE_SCHEMA,
    SUMMARY_SCHEMA,
)
from energy_pipeline.transforms.timegrid import day_window
from energy_pipeline.transforms.warehouse import TABLES

OWNERS = ["team:energy"]
LAKE_GROUP = "lake"
DAILY_GROUP = "daily"
SERVING_GROUP = "serving"
WAREHOUSE_POOL = "warehouse"
CHUNK = timedelta(days=1)


def _days(context: dg.AssetExecutionContext, site: EnergySite) -> Iterator[date]:
    """Local days of the run's partition window (one, or several in a range run)."""
    window = context.partition_time_window
    day = window.start.astimezone(site.tz).date()
    last = (window.end - timedelta(seconds=1)).astimezone(site.tz).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


DayTable = tuple[pa.Table, dict[str, object]]
"""A day's table and the metadata only that table's asset reports."""


def per_day(
    context: dg.AssetExecutionContext,
    site: EnergySite,
    table_name: str,
    schema: pa.Schema,
    build: Callable[[date, datetime, datetime], DayTable],
    check: Callable[[pa.Table, datetime, datetime], list[quality.Outcome]],
) -> dg.MaterializeResult:
    """The daily tables' shared loop: per local day of the run, `build` the table from
    [start, end), store it as the day's partition, check it. Reports the last day."""
    results: list[dg.AssetCheckResult] = []
    meta: dict[str, object] = {}
    for day in _days(context, site):
        start, end = day_window(day, site.tz)
        table, extra = build(day, start, end)
        path = write_partition(site.data_dir, table_name, start, table, schema)
        results = checks.results(check(table, start, end))
        meta = {**table_metadata(table, schema, path), "day": day.isoformat(), **extra}
    return dg.MaterializeResult(metadata=meta, check_results=results)


def stored(site: EnergySite, table: str, start: datetime, schema: pa.Schema) -> pa.Table:
    """A day's partition an asset depends on; a Dagster failure naming it when it is missing."""
    found = read_partition(site.data_dir, table, start, schema)
    if found is None:
        path = partition_path(site.data_dir, table, start)
        raise dg.Failure(
            f"{path} is missing: materialize {table} for this day first",
            metadata={"path": dg.MetadataValue.path(str(path))},
        )
    return found


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
    files = hourly_files(site.data_dir, MINUTE_READINGS, start, end)
    outcomes = quality.minute_quality(con, files, _us(start), _us(end), site.catalog)
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
            "skipped_files": problems(context, totals.skipped_files),
        }
    )
    return dg.MaterializeResult(metadata=meta, check_results=checks.results(outcomes))


def _minutes(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() // 60)


def daily_readings_asset(context: dg.AssetExecutionContext, site: EnergySite):
    def build(day: date, start: datetime, end: datetime) -> DayTable:
        con = connect()
        src = minute_source(site.data_dir, site.catalog, start, end, site.now(), con)
        dropped = MinuteStats()
        for stats in src.raw_stats:
            _add(dropped, stats)
        return daily_readings(src.table, day, site.tz, con), {
            "minutes_in_day": _minutes(start, end),
            "hours_from_minute_readings": src.from_minute_table,
            "hours_computed_from_raw": len(src.from_raw),
            "dropped_from_raw": dg.MetadataValue.json(
                {k: v for k, v in dropped.as_dict().items() if k != "skipped_files"}
            ),
            "skipped_files": problems(context, src.skipped_files),
        }

    def check(table: pa.Table, start: datetime, end: datetime) -> list[quality.Outcome]:
        return quality.full_grid(table, _minutes(start, end))

    return per_day(context, site, DAILY_READINGS, DAILY_READINGS_SCHEMA, build, check)


def daily_device_summary(context: dg.AssetExecutionContext, site: EnergySite):
    def build(day: date, start: datetime, _end: datetime) -> DayTable:
        readings = stored(site, DAILY_READINGS, start, DAILY_READINGS_SCHEMA)
        present = readings.filter(pa.compute.greater(readings.column("count"), 0))
        return daily_summary(present, day, site.tz, site.catalog, site.device_ids), {}

    return per_day(
        context,
        site,
        DAILY_DEVICE_SUMMARY,
        SUMMARY_SCHEMA,
        build,
        lambda table, _s, _e: quality.completeness(table),
    )


def forecast_features_asset(context: dg.AssetExecutionContext, site: EnergySite):
    def build(day: date, start: datetime, _end: datetime) -> DayTable:
        today = stored(site, DAILY_READINGS, start, DAILY_READINGS_SCHEMA)
        history = history_files(site.data_dir, day, site.tz)
        table = forecast_features(
            today, history, day, site.tz, site.catalog, site.config.site.country
        )
        return table, {"history_days_found": len(history)}

    return per_day(
        context,
        site,
        FORECAST_FEATURES,
        FEATURES_SCHEMA,
        build,
        lambda table, _s, _e: quality.null_rates(table),
    )


def csv_exports(context: dg.AssetExecutionContext, site: EnergySite):
    load = stored_day(site.data_dir, site.tz)
    written = []
    for day in _days(context, site):
        files = export_files(day, load, order=site.catalog.column_order)
        written += write_exports(site.data_dir, day, files)
    today = site.now().astimezone(site.tz).date()
    removed = prune_exports(site.data_dir, today, site.config.pipeline.export_retention_days)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(exports_dir(site.data_dir))),
            "files_written": dg.MetadataValue.json([str(p) for p in written]),
            "files_removed": len(removed),
        }
    )


def warehouse(context: dg.AssetExecutionContext, site: EnergySite):
    path, counts = build_warehouse(site.data_dir, TABLES)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "rows_per_view": dg.MetadataValue.json(counts),
        }
    )


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
    """The asset definitions: each function above with its partitions, deps and checks."""
    minute_to_daily = dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)
    daily_table = partial(
        dg.asset,
        partitions_def=daily_parts,
        group_name=DAILY_GROUP,
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
    )
    return [
        raw_readings_spec(config),
        dg.asset(
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
        )(minute_readings),
        daily_table(
            name=DAILY_READINGS,
            deps=[dg.AssetDep(MINUTE_READINGS, partition_mapping=minute_to_daily)],
            check_specs=checks.daily_readings_specs(),
            description=(
                "The local day's 1-minute grid per device and metric, gaps explicit (count 0), "
                "with the temporal markers (minute_of_day, minutes_elapsed, "
                "marker_5/10/15/30/60min, hour, day_of_week, is_weekend). Hours missing from "
                "minute_readings (older than its window) are computed from raw_readings with "
                "the same transform."
            ),
        )(daily_readings_asset),
        daily_table(
            name=DAILY_DEVICE_SUMMARY,
            deps=[DAILY_READINGS],
            check_specs=checks.summary_specs(),
            description=(
                "Per device and local day: energy (sum of counter deltas, resets counted), peak "
                "15-minute mean power, min/max/avg of the power metric and of every metric, "
                "completeness (% of expected minutes present)."
            ),
        )(daily_device_summary),
        daily_table(
            name=FORECAST_FEATURES,
            deps=[DAILY_READINGS],
            check_specs=checks.feature_specs(),
            description=(
                "Per device and 15-minute slot: the target (energy from counter deltas, else mean "
                "power), lags of 1 and 7 days, rolling 1 h and 24 h means of earlier slots, the "
                "same slot's mean over the last 4 weeks, calendar features (hour, weekday, "
                "weekend, holiday from site.country) and outdoor temperature where reported."
            ),
        )(forecast_features_asset),
        dg.asset(
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
        )(csv_exports),
        dg.asset(
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
        )(warehouse),
    ]


def _us(instant: datetime) -> int:
    return int(instant.timestamp() * 1_000_000)


def _add(total: MinuteStats, stats: MinuteStats) -> None:
    for key, value in stats.as_dict().items():
        if isinstance(value, int):
            setattr(total, key, getattr(total, key) + value)
    total.skipped_files += stats.skipped_files
