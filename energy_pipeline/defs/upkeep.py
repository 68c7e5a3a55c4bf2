"""The nightly upkeep job: raw compaction, retention, run-history purge (ops, not assets:
they maintain the lake rather than produce a table)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from energy_pipeline.config import Config
from energy_pipeline.defs.sensors import effective_watermark
from energy_pipeline.lake.exports import prune_exports
from energy_pipeline.lake.layout import MINUTE_READINGS, POLLS, RAW_READINGS
from energy_pipeline.lake.maintenance import compact, migrate_daily_tables, prune_days
from energy_pipeline.lake.schemas import POLLS_SCHEMA, RAW_SCHEMA
from energy_pipeline.lake.status import read_statuses


def build_upkeep_job(config: Config) -> dg.JobDefinition:
    @dg.op(
        description="merge each sealed raw/polls hour folder into one file, atomically; move "
        "daily tables of the old hive layout to one file per day"
    )
    def compact_lake(context: dg.OpExecutionContext) -> None:
        data_dir = config.data_dir
        moved = migrate_daily_tables(data_dir)
        if moved:
            context.log.info(f"{len(moved)} daily files moved to <table>/YYYY-MM-DD.parquet")
        mark, _ = effective_watermark(
            read_statuses(data_dir), datetime.now(UTC), timedelta(hours=1)
        )
        if mark is None:
            context.log.info("no collector watermark yet: nothing is sealed, nothing compacted")
            return
        sealed = mark - timedelta(hours=config.pipeline.compaction_grace_hours)
        for table, schema in ((RAW_READINGS, RAW_SCHEMA), (POLLS, POLLS_SCHEMA)):
            report = compact(data_dir, table, schema, sealed)
            for problem in report.skipped_files:
                context.log.warning(problem)
            context.log.info(
                f"{table}: {len(report.compacted)} hours compacted, "
                f"{report.files_merged} files -> {report.rows} rows"
            )

    @dg.op(description="delete raw, minute and export data past their retention")
    def apply_retention(context: dg.OpExecutionContext) -> None:
        p = config.pipeline
        today = datetime.now(UTC).date()
        removed = []
        if p.raw_retention_days:
            cutoff = today - timedelta(days=p.raw_retention_days)
            removed += prune_days(config.data_dir, RAW_READINGS, cutoff)
            removed += prune_days(config.data_dir, POLLS, cutoff)
        if p.minute_retention_days:
            cutoff = today - timedelta(days=p.minute_retention_days)
            removed += prune_days(config.data_dir, MINUTE_READINGS, cutoff)
        removed += prune_exports(config.data_dir, today, p.export_retention_days)
        context.log.info(f"retention removed {len(removed)} folders/files")

    @dg.op(description="delete Dagster runs (and their events) older than run_history_days")
    def purge_run_history(context: dg.OpExecutionContext) -> None:
        cutoff = datetime.now(UTC) - timedelta(days=config.pipeline.run_history_days)
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(created_before=cutoff), limit=1000
        )
        for record in records:
            context.instance.delete_run(record.dagster_run.run_id)
        context.log.info(f"purged {len(records)} runs created before {cutoff.isoformat()}")

    @dg.job(
        name="upkeep_job",
        executor_def=dg.in_process_executor,
        description="nightly lake upkeep",
    )
    def upkeep_job() -> None:
        compact_lake()
        apply_retention()
        purge_run_history()

    return upkeep_job
