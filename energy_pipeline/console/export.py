"""The `export` verb: CSV files for a range of local days, outside Dagster.

A day comes from its materialized daily_readings partition where there is one, else it is
computed from the lake (minute_readings, else raw) without writing any table; the files are
built by `transforms.exports` and placed by `lake.exports`, exactly as the csv_exports asset
does.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from energy_pipeline.catalog import build_catalog
from energy_pipeline.config import Config
from energy_pipeline.lake.exports import write_exports
from energy_pipeline.transforms.daily import daily_readings, minute_source
from energy_pipeline.transforms.exports import Exports, stored_day
from energy_pipeline.transforms.timegrid import day_window


def export_range(
    config: Config, first: date, last: date, device: str | None = None
) -> tuple[list[Path], list[date]]:
    """Every day in [first, last]; returns the files written and the days without readings."""
    if device is not None:
        config.device(device)
    tz = ZoneInfo(config.site.timezone)
    catalog = build_catalog(config)
    stored = stored_day(config.data_dir)

    def load(day: date) -> pa.Table | None:
        table = stored(day)
        if table is None:
            start, end = day_window(day, tz)
            src = minute_source(config.data_dir, catalog, start, end, datetime.now(UTC))
            table = daily_readings(src.table, day, tz) if src.table.num_rows else None
        return table

    written: list[Path] = []
    empty: list[date] = []
    exports = Exports(load, [device] if device else None, catalog.column_order)
    day = first
    while day <= last:
        files = write_exports(config.data_dir, day, exports.files(day))
        written += files
        if not files:
            empty.append(day)
        day += timedelta(days=1)
    return written, empty
