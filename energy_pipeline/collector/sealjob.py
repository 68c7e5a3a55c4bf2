"""The seal process: WAL segments in, the raw lake's minute files out, in a process of its own.

The collector starts `python -m energy_pipeline.collector.sealjob` for each seal and hands it a
job as JSON on stdin. Arrow and Parquet (~40 MB of libraries, and each minute's tables) live
only here, for the second a seal takes, so the 24/7 collector stays small; a seal that dies
(out of memory, a library crash) costs a retry, never a poll or an acknowledged row, because the
WAL segments stay until the collector has the report.

The job: `data_dir`, `collector_id`, `before_us` (land rows older than this; null lands all),
`segments` (each `seq`, `path`, `landed_before_us`: rows older than that are in the lake
already), `parent_pid` (the collector; the job is dropped if it is gone). The report on
stdout: `files`, `polls` (rows landed), `last_ack` (device -> newest acknowledged instant
landed, µs) and per segment `last_us` (its newest row) and `pending` (its rows not
landed). An OSError is reported as `error` with exit code 3.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from energy_pipeline.collector.frames import Payload, PollColumns, RawColumns, unpack
from energy_pipeline.collector.imports import refuse_unused
from energy_pipeline.collector.wal import MAGIC_ARROW, decode_frames
from energy_pipeline.readings import Dictionary

EXIT_OS_ERROR = 3
EXIT_ORPHANED = 4
NICE = 10
PR_SET_PDEATHSIG = 1


@dataclass(slots=True)
class _Names:
    """The job's own dictionary; each frame's codes are remapped into it (consecutive frames
    carry the same dictionary, so its table is built once per change)."""

    dictionary: Dictionary = field(default_factory=Dictionary)
    _last: tuple[list[str], np.ndarray] | None = None

    @property
    def values(self) -> list[str]:
        return self.dictionary.values

    def remap(self, names: list[str], codes: np.ndarray) -> np.ndarray:
        if self._last is None or self._last[0] != names:
            self._last = (names, self.dictionary.codes(names))
        return self._last[1][codes] if len(codes) else codes.astype(np.int32)


def _arrow_payload(payload: bytes) -> Payload:
    """A frame of the Arrow IPC layout (`EPW1`) as the columns of today's."""
    import pyarrow as pa

    from energy_pipeline.lake.schemas import POLLS_SCHEMA, RAW_DICT_SCHEMA

    (raw_len,) = np.frombuffer(payload, "<u4", 1)
    raw = pa.ipc.open_stream(pa.py_buffer(payload[4 : 4 + raw_len])).read_all()
    polls = pa.ipc.open_stream(pa.py_buffer(payload[4 + raw_len :])).read_all()
    raw, polls = raw.cast(RAW_DICT_SCHEMA), polls.cast(POLLS_SCHEMA)

    def us(column: Any) -> np.ndarray:
        return column.cast(pa.int64()).to_numpy()

    dev, met = raw["device_id"].combine_chunks(), raw["metric"].combine_chunks()
    devices = Dictionary()
    devices.codes(dev.dictionary.to_pylist())  # the raw codes keep their meaning
    poll_devices = devices.codes(polls["device_id"].to_pylist())
    return Payload(
        devices.values,
        met.dictionary.to_pylist(),
        RawColumns(
            us(raw["ts"]),
            dev.indices.to_numpy(),
            met.indices.to_numpy(),
            raw["value"].to_numpy(),
        ),
        PollColumns(
            us(polls["ts"]),
            poll_devices,
            polls["ok"].to_numpy(zero_copy_only=False).astype(np.uint8),
            us(polls["started_at"]),
            us(polls["finished_at"]),
            polls["latency_ms"].to_numpy(),
            polls["attempts"].to_numpy(),
            polls["error"].to_pylist(),
        ),
    )


@dataclass(slots=True)
class _Rows:
    """The rows a job lands, as lists of column parts with codes in the job's dictionaries."""

    devices: _Names = field(default_factory=_Names)
    metrics: _Names = field(default_factory=_Names)
    raw: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    polls: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)

    def add(self, p: Payload, lo: int | None, hi: int | None) -> int:
        """Rows in [lo, hi) of one payload; returns how many rows it holds outside that."""
        raw_keep = _window(p.raw.ts_us, lo, hi)
        poll_keep = _window(p.polls.ts_us, lo, hi)
        r, q = p.raw, p.polls
        self.raw.append(
            (
                r.ts_us[raw_keep],
                self.devices.remap(p.devices, r.device[raw_keep]),
                self.metrics.remap(p.metrics, r.metric[raw_keep]),
                r.value[raw_keep],
            )
        )
        self.polls.append(
            (
                q.ts_us[poll_keep],
                self.devices.remap(p.devices, q.device[poll_keep]),
                q.ok[poll_keep],
                q.started_us[poll_keep],
                q.finished_us[poll_keep],
                q.latency_ms[poll_keep],
                q.attempts[poll_keep],
            )
        )
        self.errors.extend(e for e, k in zip(q.error, poll_keep.tolist(), strict=True) if k)
        later_raw = 0 if hi is None else int((r.ts_us >= hi).sum())
        later_polls = 0 if hi is None else int((q.ts_us >= hi).sum())
        return later_raw + later_polls

    def column(self, parts: list[tuple[np.ndarray, ...]], i: int, dtype: str) -> np.ndarray:
        return np.concatenate([p[i] for p in parts]) if parts else np.empty(0, dtype)


def _window(ts: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    keep = np.ones(len(ts), bool)
    if lo is not None:
        keep &= ts >= lo
    if hi is not None:
        keep &= ts < hi
    return keep


def _tables(rows: _Rows) -> tuple[Any, Any]:
    import pyarrow as pa

    from energy_pipeline.lake.schemas import POLLS_SCHEMA, RAW_DICT_SCHEMA, TS_TYPE

    devices = pa.array(rows.devices.values, pa.string())
    c = rows.column
    raw = pa.table(
        [
            pa.array(c(rows.raw, 0, "i8"), TS_TYPE),
            pa.DictionaryArray.from_arrays(pa.array(c(rows.raw, 1, "i4")), devices),
            pa.DictionaryArray.from_arrays(
                pa.array(c(rows.raw, 2, "i4")), pa.array(rows.metrics.values, pa.string())
            ),
            pa.array(c(rows.raw, 3, "f8"), pa.float64()),
        ],
        schema=RAW_DICT_SCHEMA,
    )
    polls = pa.table(
        [
            pa.array(c(rows.polls, 0, "i8"), TS_TYPE),
            devices.take(pa.array(c(rows.polls, 1, "i4"))),
            pa.array(c(rows.polls, 2, "u1").astype(bool)),
            pa.array(c(rows.polls, 3, "i8"), TS_TYPE),
            pa.array(c(rows.polls, 4, "i8"), TS_TYPE),
            pa.array(c(rows.polls, 5, "f8"), pa.float64()),
            pa.array(c(rows.polls, 6, "i4"), pa.int32()),
            pa.array(rows.errors, pa.string()),
        ],
        schema=POLLS_SCHEMA,
    )
    return raw, polls


def _last_ack(rows: _Rows) -> dict[str, int]:
    ts, device, ok = (rows.column(rows.polls, i, t) for i, t in ((0, "i8"), (1, "i4"), (2, "u1")))
    newest = np.full(len(rows.devices.values), -1, np.int64)
    np.maximum.at(newest, device[ok == 1], ts[ok == 1])
    return {rows.devices.values[d]: int(newest[d]) for d in np.flatnonzero(newest >= 0)}


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Carry out one job (see the module docstring); raises OSError."""
    from energy_pipeline.lake.seal import LakeWriter

    writer = LakeWriter(Path(job["data_dir"]), job["collector_id"])
    before = job["before_us"]
    rows = _Rows()
    segments: dict[str, dict[str, int | None]] = {}
    for seg in job["segments"]:
        try:
            data = Path(seg["path"]).read_bytes()
        except FileNotFoundError:
            data = b""  # rotated before its first append: no file was ever made
        pending, last = 0, None
        for magic, payload in decode_frames(data):
            p = _arrow_payload(payload) if magic == MAGIC_ARROW else unpack(payload)
            pending += rows.add(p, seg["landed_before_us"], before)
            newest = [int(ts.max()) for ts in (p.raw.ts_us, p.polls.ts_us) if len(ts)]
            last = max([*newest, *([] if last is None else [last])], default=None)
        segments[str(seg["seq"])] = {"last_us": last, "pending": pending}
    raw, polls = _tables(rows)
    files = writer.write(raw, polls) if raw.num_rows or polls.num_rows else 0
    return {
        "files": files,
        "polls": polls.num_rows,
        "last_ack": _last_ack(rows),
        "segments": segments,
    }


def _die_with_parent() -> None:
    """SIGKILL when the collector that started this dies (Linux; elsewhere a no-op), and low
    priority: a seal can wait, the poll loops cannot."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.nice(NICE)


def main() -> int:
    _die_with_parent()
    refuse_unused()
    job = json.loads(sys.stdin.buffer.read())
    if job.get("parent_pid", os.getppid()) != os.getppid():
        return EXIT_ORPHANED  # the collector died before the signal was armed: it wants nothing
    try:
        report = run(job)
    except OSError as exc:
        error = {"errno": exc.errno, "strerror": exc.strerror or str(exc)}
        error["filename"] = None if exc.filename is None else str(exc.filename)
        json.dump({"error": error}, sys.stdout)
        return EXIT_OS_ERROR
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
