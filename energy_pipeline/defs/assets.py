"""The assets: raw_readings (external), minute_readings, the daily tables, exports, warehouse.

Thin on purpose: each asset is one small function that asks `transforms/` for its table and
`lake/` to store it (hive folders from UTC instants, exactly its own window), and returns a
`MaterializeResult` with row count, path, a preview and what was dropped or skipped, plus its
checks' results; the column schema is on the definition. No I/O managers. The daily tables
share one per-day loop.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial

import dagster as dg
import pyarrow as pa

from energy_pipeline.catalog.tables import sql_tables
from energy_pipeline.config import Config
from energy_pipeline.defs import checks
from energy_pipeline.defs.metadata import column_schema, problems, table_metadata
from energy_pipeline.defs.partitions import forecast_partitions
from energy_pipeline.defs.resources import EnergySite
from energy_pipeline.lake.exports import prune_exports, write_exports
from energy_pipeline.lake.layout import (
    DAILY_DEVICE_SUMMARY,
    DAILY_READINGS,
    FORECAST_ACCURACY,
    FORECAST_FEATURES,
    LOAD_FORECAST,
    MINUTE_READINGS,
    RAW_READINGS,
    day_path,
    exports_dir,
    table_dir,
)
from energy_pipeline.lake.maintenance import migrate_daily_tables
from energy_pipeline.lake.scan import hourly_files, read_day, read_days
from energy_pipeline.lake.schemas import RAW_SCHEMA
from energy_pipeline.lake.tables import write_day, write_hourly
from energy_pipeline.lake.warehouse import build_warehouse
from energy_pipeline.transforms import forecast, quality
from energy_pipeline.transforms.daily import daily_readings, daily_summary, minute_source
from energy_pipeline.transforms.exports import Exports, stored_day
from energy_pipeline.transforms.features import forecast_features, history_files
from energy_pipeline.transforms.minute import MinuteStats, compute_minutes, connect
from energy_pipeline.transforms.schemas import (
    DAILY_READINGS_SCHEMA,
    FEATURES_SCHEMA,
    FORECAST_ACCURACY_SCHEMA,
    LOAD_FORECAST_SCHEMA,
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
Check = Callable[[pa.Table, datetime, datetime], list[quality.Outcome]]


def per_day(
    context: dg.AssetExecutionContext,
    site: EnergySite,
    tables: dict[str, tuple[pa.Schema, Check]],
    build: Callable[[date, datetime, datetime], dict[str, DayTable]],
) -> Iterator[dg.MaterializeResult]:
    """The daily tables' shared loop: per local day of the run, `build` each table from
    [start, end), store it as the day's file, check it. A range run is one run: each day's
    partition gets its own row count, the run's metadata sums the rows (`rows_in_run`) and
    lists each day's figures, its checks cover every day."""
    migrate_daily_tables(site.data_dir)
    outcomes: dict[str, list[tuple[str, list[quality.Outcome]]]] = {name: [] for name in tables}
    figures: dict[str, list[dict[str, object]]] = {name: [] for name in tables}
    meta: dict[str, dict[str, object]] = {}
    for day in _days(context, site):
        start, end = day_window(day, site.tz)
        for name, (table, extra) in build(day, start, end).items():
            schema, check = tables[name]
            path = write_day(site.data_dir, name, day, table, schema)
            outcomes[name].append((day.isoformat(), check(table, start, end)))
            figures[name].append(
                {"day": day.isoformat(), "rows": table.num_rows, **_scalars(extra)}
            )
            meta[name] = {**table_metadata(table, path), "day": day.isoformat(), **extra}
    for name in tables:
        days = figures[name]
        if len(days) > 1:
            meta[name].pop("day")
            meta[name].pop("dagster/row_count")
            for d in days:
                context.add_asset_metadata(
                    {"dagster/row_count": d["rows"]}, asset_key=name, partition_key=d["day"]
                )
            meta[name].update(
                {
                    "rows_in_run": sum(int(d["rows"]) for d in days),
                    "path": dg.MetadataValue.path(str(table_dir(site.data_dir, name))),
                    "days": len(days),
                    "first_day": days[0]["day"],
                    "last_day": days[-1]["day"],
                    "per_day": dg.MetadataValue.json(days),
                }
            )
        yield dg.MaterializeResult(
            asset_key=name,
            metadata=meta.get(name, {}),
            check_results=checks.results(quality.over_days(outcomes[name]), name),
        )


def _scalars(extra: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in extra.items() if isinstance(v, int | float | str)}


def stored(site: EnergySite, table: str, day: date, schema: pa.Schema) -> pa.Table:
    """A day of a table an asset depends on; a Dagster failure naming it when it is missing."""
    found = read_day(site.data_dir, table, day, schema)
    if found is None:
        path = day_path(site.data_dir, table, day)
        raise dg.Failure(
            f"{path} is missing: materialize {table} for {day} first",
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
    meta = table_metadata(last_table, table_dir(site.data_dir, MINUTE_READINGS), rows)
    key_range = context.partition_key_range
    if key_range.start != key_range.end:
        # Dagster copies run metadata into every partition's event, and a count per partition
        # (`add_asset_metadata`, which lists the whole range on each call) would double the
        # run for a day of minutes: the run's total goes under its own name
        meta["rows_in_run"] = meta.pop("dagster/row_count")
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
        return daily_readings(src.table, day, site.tz), {
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

    yield from per_day(
        context,
        site,
        {DAILY_READINGS: (DAILY_READINGS_SCHEMA, check)},
        lambda day, start, end: {DAILY_READINGS: build(day, start, end)},
    )


def daily_device_summary(context: dg.AssetExecutionContext, site: EnergySite):
    def build(day: date, _start: datetime, _end: datetime) -> DayTable:
        readings = stored(site, DAILY_READINGS, day, DAILY_READINGS_SCHEMA)
        present = readings.filter(pa.compute.greater(readings.column("count"), 0))
        return daily_summary(present, day, site.tz, site.catalog, site.device_ids), {}

    yield from per_day(
        context,
        site,
        {DAILY_DEVICE_SUMMARY: (SUMMARY_SCHEMA, lambda table, _s, _e: quality.completeness(table))},
        lambda day, start, end: {DAILY_DEVICE_SUMMARY: build(day, start, end)},
    )


def forecast_features_asset(context: dg.AssetExecutionContext, site: EnergySite):
    def build(day: date, _start: datetime, _end: datetime) -> DayTable:
        today = stored(site, DAILY_READINGS, day, DAILY_READINGS_SCHEMA)
        history = history_files(site.data_dir, day)
        table = forecast_features(
            today, history, day, site.tz, site.catalog, site.config.site.country
        )
        return table, {"history_days_found": len(history)}

    yield from per_day(
        context,
        site,
        {FORECAST_FEATURES: (FEATURES_SCHEMA, lambda table, _s, _e: quality.null_rates(table))},
        lambda day, start, end: {FORECAST_FEATURES: build(day, start, end)},
    )


def load_forecast(context: dg.AssetExecutionContext, site: EnergySite):
    def build(day: date, _start: datetime, _end: datetime) -> dict[str, DayTable]:
        history = [day - timedelta(days=i) for i in range(forecast.HISTORY_DAYS, 0, -1)]
        features = read_days(site.data_dir, FORECAST_FEATURES, history, FEATURES_SCHEMA)
        predicted, accuracy = forecast.forecast_day(
            features, day, site.tz, site.config.site.country
        )
        found = {"feature_days_found": len(set(features.column("day").to_pylist()))}
        return {LOAD_FORECAST: (predicted, found), FORECAST_ACCURACY: (accuracy, found)}

    def check(table: pa.Table, _s: datetime, _e: datetime) -> list[quality.Outcome]:
        return quality.beats_baseline(table, forecast.MODEL, forecast.NAIVE)

    yield from per_day(
        context,
        site,
        {
            LOAD_FORECAST: (LOAD_FORECAST_SCHEMA, lambda _t, _s, _e: []),
            FORECAST_ACCURACY: (FORECAST_ACCURACY_SCHEMA, check),
        },
        build,
    )


def csv_exports(context: dg.AssetExecutionContext, site: EnergySite):
    exports = Exports(stored_day(site.data_dir), order=site.catalog.column_order)
    written = []
    for day in _days(context, site):
        written += write_exports(site.data_dir, day, exports.files(day))
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
    path, counts = build_warehouse(site.data_dir, TABLES, sql_tables(site.catalog))
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
        metadata={
            "path": dg.MetadataValue.path(str(table_dir(config.data_dir, RAW_READINGS))),
            **_columns(RAW_SCHEMA),
        },
    )


def _columns(schema: pa.Schema) -> dict[str, object]:
    return {"dagster/column_schema": column_schema(schema)}


def daily_freshness(config: Config) -> dg.FreshnessPolicy:
    """Yesterday's file is due an hour after the daily schedule fires (00:20 local by default):
    a daily table not refreshed since the last local midnight by then turns red."""
    minute = config.pipeline.daily_schedule_minute
    return dg.FreshnessPolicy.cron(
        deadline_cron=f"{minute} 1 * * *",
        lower_bound_delta=timedelta(hours=1, minutes=minute),
        timezone=config.site.timezone,
    )


def build_assets(
    config: Config,
    minute_parts: dg.TimeWindowPartitionsDefinition,
    daily_parts: dg.DailyPartitionsDefinition,
) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """The asset definitions: each function above with its partitions, deps and checks."""
    minute_to_daily = dg.TimeWindowPartitionMapping(allow_nonexistent_upstream_partitions=True)
    days_before = dg.TimeWindowPartitionMapping(
        start_offset=-forecast.HISTORY_DAYS,
        end_offset=-1,
        allow_nonexistent_upstream_partitions=True,
    )
    daily_table = partial(
        dg.asset,
        partitions_def=daily_parts,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=DAILY_GROUP,
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        freshness_policy=daily_freshness(config),
    )

    def forecast_spec(name: str, schema: pa.Schema, description: str) -> dg.AssetSpec:
        return dg.AssetSpec(
            name,
            deps=[dg.AssetDep(FORECAST_FEATURES, partition_mapping=days_before)],
            kinds={"scikit-learn", "parquet"},
            owners=OWNERS,
            freshness_policy=daily_freshness(config),
            metadata=_columns(schema),
            description=description,
        )

    return [
        raw_readings_spec(config),
        dg.asset(
            name=MINUTE_READINGS,
            partitions_def=minute_parts,
            metadata=_columns(MINUTE_SCHEMA),
            backfill_policy=dg.BackfillPolicy.single_run(),
            deps=[RAW_READINGS],
            group_name=LAKE_GROUP,
            kinds={"duckdb", "parquet"},
            owners=OWNERS,
            check_specs=checks.minute_specs(),
            description=(
                "Per device, metric and minute: avg, min, max, last, count. Cleaned first "
                "(misfiled, future, non-finite and out-of-profile-range readings dropped and "
                "counted; repeats de-duplicated); counters as deltas with reset/rollover "
                "detection, never averaged. A backfill of any range is one run (single-run "
                "policy, as `dagster asset materialize --partition-range` needs), one DuckDB "
                "query per day of it."
            ),
        )(minute_readings),
        daily_table(
            name=DAILY_READINGS,
            metadata=_columns(DAILY_READINGS_SCHEMA),
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
            metadata=_columns(SUMMARY_SCHEMA),
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
            metadata=_columns(FEATURES_SCHEMA),
            deps=[DAILY_READINGS],
            check_specs=checks.feature_specs(),
            description=(
                "Per device and 15-minute slot: the target (energy from counter deltas, else mean "
                "power), lags of 1 and 7 days, rolling 1 h and 24 h means of earlier slots, the "
                "same slot's mean over the last 4 weeks, calendar features (hour, weekday, "
                "weekend, holiday from site.country) and outdoor temperature where reported."
            ),
        )(forecast_features_asset),
        dg.multi_asset(
            name=LOAD_FORECAST,
            partitions_def=forecast_partitions(config),
            backfill_policy=dg.BackfillPolicy.single_run(),
            group_name=DAILY_GROUP,
            check_specs=checks.accuracy_specs(),
            specs=[
                forecast_spec(
                    LOAD_FORECAST,
                    LOAD_FORECAST_SCHEMA,
                    (
                        "Day-ahead forecast of each device's target (pipeline.forecast_targets, "
                        "else its energy counter, else power) for every quarter-hour of the "
                        "local day (96; 92/100 on DST days), from data up to the end of the day "
                        "before only: a seasonal naive (same slot 7 days earlier, 1 day while "
                        "the history is shorter) and scikit-learn's HistGradientBoosting "
                        "trained on forecast_features, with an 80 % interval from its backtest "
                        "errors."
                    ),
                ),
                forecast_spec(
                    FORECAST_ACCURACY,
                    FORECAST_ACCURACY_SCHEMA,
                    (
                        "Per as-of day, device, target and model: MAE, RMSE, MAPE and skill "
                        "versus the seasonal naive (1 - MAE / MAE naive) of a rolling-origin "
                        "backtest over the 7 days before, each forecast by a model that saw "
                        "only the days before it."
                    ),
                ),
            ],
        )(load_forecast),
        dg.asset(
            name="csv_exports",
            partitions_def=daily_parts,
            deps=[DAILY_READINGS],
            backfill_policy=dg.BackfillPolicy.single_run(),
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
            deps=[
                DAILY_READINGS,
                DAILY_DEVICE_SUMMARY,
                FORECAST_FEATURES,
                LOAD_FORECAST,
                FORECAST_ACCURACY,
            ],
            group_name=SERVING_GROUP,
            kinds={"duckdb"},
            owners=OWNERS,
            pool=WAREHOUSE_POOL,
            description=(
                "`warehouse.duckdb` for BI tools and notebooks that want a file: one view per "
                "table (raw_readings, polls, minute_readings, daily_readings, "
                "daily_device_summary, forecast_features, load_forecast, forecast_accuracy) "
                "over the Parquet with absolute paths, plus the catalog's `devices` and "
                "`metrics`; built as a new file and swapped in atomically. "
                "`energy-pipeline sql` needs no warehouse: it creates the same views on the fly."
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
