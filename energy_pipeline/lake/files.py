"""Crash-safe file writes: write a temp file, fsync it, rename over the target, fsync the folder.

A reader sees the old file or the new one, never half of one; after a crash the target is
either absent or complete, and stray `.tmp` files are ignored by every reader.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from energy_pipeline.lake.layout import TMP_SUFFIX

if TYPE_CHECKING:
    import pyarrow as pa


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def temp_name_pattern(name: str) -> re.Pattern[str]:
    """The temp files `_tmp_for` names for targets whose names match the regex `name`."""
    return re.compile(rf"\.{name}\.\d+{re.escape(TMP_SUFFIX)}")


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp)`, fsync tmp, rename it over `path`, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def atomic_write_parquet(table: pa.Table, path: Path, *, compression: str = "zstd") -> None:
    """Parquet is imported here, not with the module: the collector fsyncs and writes JSON
    through this module for its whole life and never writes Parquet itself."""
    import pyarrow.parquet as pq

    _atomic(path, lambda tmp: pq.write_table(table, tmp, compression=compression))
