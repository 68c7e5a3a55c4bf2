"""Keeping minute_readings current: one sensor over the collectors' sealed watermarks.

Each tick reads the status files (every minute before the slowest live collector's watermark
is in the lake) and requests ONE run for the whole range of newly sealed minutes, via the partition
range tags, capped at `pipeline.max_minutes_per_run` so a sensor that was down catches up in
bounded chunks, one per tick. Hours already processed whose raw folder changed since (a WAL
replay, a device's history backfill) are requested again; a change recorded by compaction
(same rows, new file) is not. The planning is a pure function of (watermark, cursor, folder
mtimes), tested without Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from energy_pipeline.config import Config
from energy_pipeline.defs.partitions import minute_window_start
from energy_pipeline.lake.layout import HOUR, RAW_READINGS, floor_hour
from energy_pipeline.lake.maintenance import read_manifest
from energy_pipeline.lake.scan import hour_folders
from energy_pipeline.lake.status import read_statuses

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
MAX_RERUNS_PER_TICK = 6
# A live collector rewrites its status every tick and seals every minute; one silent for this
# long is stopped, stuck, or a one-shot writer such as `simulate-history`.
STALE_AFTER = timedelta(minutes=3)
_HOUR_KEY = "%Y-%m-%dT%H"


@dataclass
class Cursor:
    """What the sensor has requested: minutes before `processed`, and the raw folder mtime of
    every fully requested hour at the time it was requested."""

    processed: datetime | None = None
    sealed: datetime | None = None
    folders: dict[str, int] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps(
            {
                "processed": self.processed.isoformat() if self.processed else None,
                "sealed": self.sealed.isoformat() if self.sealed else None,
                "folders": self.folders,
            },
            sort_keys=True,
        )

    @classmethod
    def loads(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        doc = json.loads(text)
        return cls(
            processed=datetime.fromisoformat(doc["processed"]) if doc.get("processed") else None,
            sealed=datetime.fromisoformat(doc["sealed"]) if doc.get("sealed") else None,
            folders=dict(doc.get("folders") or {}),
        )


@dataclass(frozen=True)
class Planned:
    start: datetime
    end: datetime
    reason: str


def floor_minute(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(second=0, microsecond=0)


def plan(
    sealed: datetime | None,
    cursor: Cursor,
    window_start: datetime,
    cap_minutes: int,
    folders: dict[datetime, tuple[int, str]],
    manifest: dict[str, dict[str, int]],
) -> tuple[list[Planned], Cursor]:
    """The runs to request and the next cursor.

    `folders` maps each raw hour folder in the window to (mtime_ns, path relative to data_dir);
    `manifest` is the compaction record {relative path: {"before", "after"}}.
    """
    window_start = window_start.astimezone(UTC)
    if sealed is None:
        return [], cursor
    sealed = floor_minute(sealed)
    earliest = min(folders, default=None)
    first = max(window_start, earliest) if earliest is not None else window_start
    processed = cursor.processed or first
    processed = max(processed, window_start)
    runs: list[Planned] = []
    recorded = {k: v for k, v in cursor.folders.items() if _hour(k) >= floor_hour(window_start)}

    reruns: list[datetime] = []
    for hour, (mtime, rel) in sorted(folders.items()):
        if hour + HOUR > processed:
            break
        key = hour.strftime(_HOUR_KEY)
        seen = recorded.get(key)
        if seen == mtime:
            continue
        swap = manifest.get(rel)
        if seen is not None and swap and swap.get("before") == seen and swap.get("after") == mtime:
            recorded[key] = mtime
            continue
        if len(reruns) < MAX_RERUNS_PER_TICK:
            reruns.append(hour)
            recorded[key] = mtime
    for hour in reruns:
        start = max(hour, window_start)
        if runs and runs[-1].end == start and runs[-1].reason == "changed":
            runs[-1] = Planned(runs[-1].start, hour + HOUR, "changed")
        else:
            runs.append(Planned(start, hour + HOUR, "changed"))

    if processed < sealed:
        end = min(sealed, processed + timedelta(minutes=cap_minutes))
        runs.append(Planned(processed, end, "sealed"))
        hour = floor_hour(processed)
        while hour + HOUR <= end:
            if hour in folders:
                recorded[hour.strftime(_HOUR_KEY)] = folders[hour][0]
            hour += HOUR
        processed = end
    return runs, Cursor(processed=processed, sealed=sealed, folders=recorded)


def effective_watermark(
    statuses: list[dict], now: datetime, stale_after: timedelta
) -> tuple[datetime | None, dict[str, datetime]]:
    """The minute before which the lake is complete, from the collectors' status files.

    The slowest live collector decides (a shard that lags holds everyone back, so no minute is
    processed before all its readings are in). A collector whose status has not been updated
    for `stale_after` (stopped, crashed, or a one-shot `simulate-history`) no longer holds the
    others back; if it comes back and replays old minutes, their folders change and the
    sensor requests them again. With no live collector, the furthest watermark counts.
    """
    marks: dict[str, datetime] = {}
    live: list[datetime] = []
    for doc in statuses:
        try:
            mark = datetime.fromisoformat(doc["sealed_watermark"])
        except (KeyError, TypeError, ValueError):
            continue
        marks[str(doc["collector_id"])] = mark
        try:
            updated = datetime.fromisoformat(doc.get("updated_at") or "")
        except ValueError:
            continue
        if now - updated <= stale_after:
            live.append(mark)
    if not marks:
        return None, marks
    return (min(live) if live else max(marks.values())), marks


def _hour(key: str) -> datetime:
    return datetime.strptime(key, _HOUR_KEY).replace(tzinfo=UTC)


def raw_folders(config: Config, since: datetime) -> dict[datetime, tuple[int, str]]:
    data_dir = config.data_dir
    out: dict[datetime, tuple[int, str]] = {}
    for hour, folder in hour_folders(data_dir, RAW_READINGS):
        if hour + HOUR > since:
            try:
                out[hour] = (folder.stat().st_mtime_ns, str(folder.relative_to(data_dir)))
            except FileNotFoundError:
                continue
    return out


def build_minute_sensor(
    config: Config,
    job: UnresolvedAssetJobDefinition,
    minute_parts: dg.TimeWindowPartitionsDefinition,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="sealed_minutes_sensor",
        job=job,
        minimum_interval_seconds=config.pipeline.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Requests minute_readings for the range of minutes the collectors sealed since the "
            "last tick (one run, capped), and again for hours whose raw folder changed; "
            "records each advance of the sealed watermark on raw_readings."
        ),
    )
    def sealed_minutes_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = datetime.now(UTC)
        window_start = minute_window_start(config, now)
        sealed, marks = effective_watermark(read_statuses(config.data_dir), now, STALE_AFTER)
        if sealed is not None:
            sealed = min(sealed, floor_minute(now))
        cursor = Cursor.loads(context.cursor)
        runs, new_cursor = plan(
            sealed,
            cursor,
            window_start,
            config.pipeline.max_minutes_per_run,
            raw_folders(config, window_start),
            read_manifest(config.data_dir),
        )
        requests = [run_request(minute_parts, run) for run in runs]
        events = []
        if sealed is not None and sealed != cursor.sealed:
            events.append(
                dg.AssetMaterialization(
                    asset_key="raw_readings",
                    description="collectors sealed more minutes",
                    metadata={
                        "sealed_watermark": sealed.isoformat(),
                        "collectors": dg.MetadataValue.json(
                            {k: v.isoformat() for k, v in marks.items()}
                        ),
                    },
                )
            )
        skip = None if requests else _skip_reason(sealed, marks)
        return dg.SensorResult(
            run_requests=requests,
            cursor=new_cursor.dumps(),
            asset_events=events,
            skip_reason=skip,
        )

    return sealed_minutes_sensor


def _skip_reason(sealed: datetime | None, marks: dict[str, datetime]) -> str:
    if not marks:
        return "no collector status with a sealed watermark under data_dir/state yet"
    return f"no newly sealed minutes (watermark {sealed.isoformat() if sealed else '-'})"


def run_request(parts: dg.TimeWindowPartitionsDefinition, run: Planned) -> dg.RunRequest:
    """The range run of `run`'s minutes; the headless demo runs the very same request."""
    first = parts.get_partition_key_for_timestamp(run.start.timestamp())
    last = parts.get_partition_key_for_timestamp((run.end - timedelta(minutes=1)).timestamp())
    return dg.RunRequest(
        # Sealed ranges never repeat, so their key makes a retried tick idempotent; a changed
        # hour may legitimately be requested again later, so it carries no key.
        run_key=f"sealed:{run.start.isoformat()}" if run.reason == "sealed" else None,
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last, "energy_pipeline/reason": run.reason},
    )
