"""`energy-pipeline export influxdb`: the lake's readings of a range of local days, written to
the configured InfluxDB — history from before the output was enabled, or what an outage longer
than the output's queue cost.

The points are the live output's: same measurement, tags, fields and timestamps (the poll's
scheduled instant), so InfluxDB, which keeps one value per series, field and instant, ends up
with the same data however often a range is written. `minute_readings` gives one point per
device and minute: each metric's minute mean, the last reading for counters and states.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TextIO
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa

from energy_pipeline.catalog import build_catalog
from energy_pipeline.config import Config, InfluxOutput
from energy_pipeline.lake.layout import HOUR, MINUTE_READINGS, RAW_READINGS, hours_of
from energy_pipeline.lake.scan import scan_window
from energy_pipeline.lake.schemas import RAW_SCHEMA
from energy_pipeline.live.influxdb import InfluxWriter, WriteResult, point_encoder
from energy_pipeline.live.lineprotocol import PointEncoder
from energy_pipeline.transforms.minute import connect
from energy_pipeline.transforms.schemas import MINUTE_SCHEMA
from energy_pipeline.transforms.timegrid import day_window, days_between

TABLES = {RAW_READINGS: RAW_SCHEMA, MINUTE_READINGS: MINUTE_SCHEMA}
ATTEMPTS = 6


class ExportFailed(Exception):
    """The InfluxDB refused the data or stayed unreachable; the message says where to resume."""


@dataclass
class ExportSummary:
    points: int = 0
    requests: int = 0
    days_without_data: int = 0


def _value_sql(table: str) -> str:
    if table == RAW_READINGS:
        return "r.value"
    return "CASE WHEN k.kind IS NULL THEN r.avg ELSE r.last END"


def _kinds(config: Config) -> pa.Table:
    """Counters and states per device (a minute's value is then its last reading)."""
    rows = [
        (device, metric)
        for device, meta in build_catalog(config).devices.items()
        for metric, m in meta.metrics.items()
        if m.kind in ("counter", "state")
    ]
    return pa.table(
        {
            "device_id": pa.array([r[0] for r in rows], pa.string()),
            "metric": pa.array([r[1] for r in rows], pa.string()),
            "kind": pa.array(["last"] * len(rows), pa.string()),
        }
    )


def read_window(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    table: str,
    start: datetime,
    end: datetime,
    device: str | None,
) -> tuple[pa.Table, list[str]]:
    """The window's rows as (ts, device_id, metric, value), sorted by device and ts, and the
    files skipped (by name and why)."""
    scan = scan_window(config.data_dir, table, start, end, TABLES[table])
    empty = pa.table({n: pa.array([], RAW_SCHEMA.field(n).type) for n in RAW_SCHEMA.names})
    if not scan.files:
        return empty, scan.problems
    paths = ", ".join("'" + str(p).replace("'", "''") + "'" for p in scan.files)
    where = "r.ts >= $start AND r.ts < $end" + (" AND r.device_id = $device" if device else "")
    params: dict[str, object] = {"start": start, "end": end}
    if device:
        params["device"] = device
    sql = (
        f"SELECT r.ts, r.device_id, r.metric, {_value_sql(table)} AS value "
        f"FROM read_parquet([{paths}], hive_partitioning = false) r "
        "LEFT JOIN kinds k ON r.device_id = k.device_id AND r.metric = k.metric "
        f"WHERE {where} ORDER BY r.device_id, r.ts, r.metric"
    )
    rows = con.sql(sql, params=params).to_arrow_table()
    return rows.cast(RAW_SCHEMA), scan.problems


def chunks(body: bytes, lines: int) -> list[bytes]:
    """The body cut after every `lines` lines (one request each)."""
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10) + 1
    cuts = [0, *ends[lines - 1 :: lines].tolist()]
    if cuts[-1] != len(body):
        cuts.append(len(body))
    return [body[a:b] for a, b in itertools.pairwise(cuts)]


def deliver(
    writer: InfluxWriter,
    cfg: InfluxOutput,
    body: bytes,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST one chunk, retrying what the live output retries; the number of requests made."""
    delay = cfg.backoff_initial
    result = WriteResult("retry")
    for attempt in range(1, ATTEMPTS + 1):
        result = writer.post(body)
        if result.verdict == "ok":
            return attempt
        if result.verdict != "retry":
            break
        if attempt < ATTEMPTS:
            sleep(max(delay, min(result.retry_after or 0.0, cfg.backoff_max)))
            delay = min(delay * 2, cfg.backoff_max)
    raise ExportFailed(f"{writer.target}: {result.detail}")


def export_influxdb(
    config: Config,
    first: date,
    last: date,
    device: str | None = None,
    table: str = RAW_READINGS,
    measurement: str | None = None,
    progress: TextIO = sys.stderr,
) -> ExportSummary:
    cfg = config.outputs.influxdb
    assert cfg is not None, "checked by the caller"
    if measurement:
        cfg = cfg.model_copy(update={"measurement": measurement})
    encoder: PointEncoder = point_encoder(config, cfg, build_catalog(config).devices)
    writer = InfluxWriter(cfg)
    zone = ZoneInfo(config.site.timezone)
    days = days_between(first, last)
    summary = ExportSummary()
    con = connect()
    con.register("kinds", _kinds(config))
    for i, day in enumerate(days, 1):
        start, end = day_window(day, zone)
        points = 0
        for hour in hours_of(start, end):  # an hour at a time bounds the memory a day needs
            window = (max(hour, start), min(hour + HOUR, end))
            rows, problems = read_window(con, config, table, *window, device)
            for problem in problems:
                print(f"warning: {problem}", file=progress)
            body = encoder.long_table(rows)
            for chunk in chunks(body, cfg.batch_max_points) if body else []:
                try:
                    summary.requests += deliver(writer, cfg, chunk)
                except ExportFailed as exc:
                    raise ExportFailed(
                        f"{day}: {exc}; {summary.points + points} points before {hour:%H:%M}Z "
                        f"were written, rerun with --from {day}"
                    ) from None
            points += body.count(b"\n")
        summary.points += points
        summary.days_without_data += points == 0
        print(f"{day}: {points} points ({i}/{len(days)} days) to {writer.target}", file=progress)
    return summary
