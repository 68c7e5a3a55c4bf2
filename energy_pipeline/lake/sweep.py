"""Removing the temp files a crashed seal left behind, by name alone.

Apart from `lake.seal` (which loads Arrow and Parquet) so a starting collector sweeps in its own
process and needs no seal process while its write-ahead log is empty.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from energy_pipeline.lake.files import temp_name_pattern
from energy_pipeline.lake.layout import POLLS, RAW_READINGS, hour_dir, sealed_name_pattern


def sweep_temp(data_dir: Path, collector_id: str, since: datetime, until: datetime) -> int:
    """Remove `collector_id`'s temp files left by a crash mid-write in the hours of
    [since, until]; returns how many.

    Only called under the collector's lock, so no live writer owns them. Readers ignore them
    anyway; this only keeps the folders clean.
    """
    removed = 0
    mine = temp_name_pattern(sealed_name_pattern(collector_id))
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour <= until:
        for table in (RAW_READINGS, POLLS):
            for stale in hour_dir(data_dir, table, hour).glob(f".{collector_id}-*"):
                if mine.fullmatch(stale.name):
                    stale.unlink(missing_ok=True)
                    removed += 1
        hour += timedelta(hours=1)
    return removed
