"""`simulate-history`: N days of readings from the simulators' device models, landed through
the same lake writer as live data under its own collector id, so the pipeline and the demo have
history to work on from the first minute.

Per device and day a model that has `values_between` computes the whole day's instants in one
array call (the Modbus models: ~2 ms an instant one by one); others are asked once per instant.
The long table is then built with array operations (repeat, tile, a NaN mask), never row by row.
Files hold an hour each (a day of minute files per table would be 1,440 small files); re-running
rewrites the same files, so it is idempotent.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

import numpy as np
import pyarrow as pa

from energy_pipeline.config import Config, Device
from energy_pipeline.lake.layout import HOUR_US
from energy_pipeline.lake.schemas import POLLS_SCHEMA, RAW_DICT_SCHEMA, TS_TYPE
from energy_pipeline.lake.seal import LakeWriter, earliest_other_minute
from energy_pipeline.lake.status import device_status, status_document, write_status
from energy_pipeline.readings import Dictionary
from energy_pipeline.simulators import ArrayDeviceModel, device_model

HISTORY_ID = "history"


@dataclass(frozen=True, slots=True)
class HistoryResult:
    start: datetime
    end: datetime
    devices: int
    readings: int
    invalid: int
    files: int
    seconds: float


def instants(start: datetime, end: datetime, interval: float) -> np.ndarray:
    """Aligned sample instants in [start, end) as epoch seconds (multiples of `interval`)."""
    first = np.ceil(start.timestamp() / interval)
    last = np.ceil(end.timestamp() / interval)
    return np.arange(first, last, dtype=np.float64) * interval


def model_matrix(model: object, ts: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """(metric names, values of shape len(ts) x len(names)): from `model.values_between` in one
    call where the model has it, else from `model.values_at` per instant."""
    if isinstance(model, ArrayDeviceModel):
        return model.values_between(ts)
    rows = [model.values_at(datetime.fromtimestamp(t, tz=UTC)) for t in ts.tolist()]  # type: ignore[attr-defined]
    if not rows:
        return (), np.empty((0, 0))
    names = tuple(rows[0])
    if all(tuple(r) == names for r in rows):
        flat = np.fromiter(
            itertools.chain.from_iterable(r.values() for r in rows),
            dtype=np.float64,
            count=len(rows) * len(names),
        )
        return names, flat.reshape(len(rows), len(names))
    names = tuple(dict.fromkeys(itertools.chain.from_iterable(rows)))
    matrix = np.array([[r.get(n, np.nan) for n in names] for r in rows], dtype=np.float64)
    return names, matrix


class _Progress:
    def __init__(self, total: int, out: TextIO):
        self.total, self.done, self.out = total, 0, out
        self.tty = out.isatty()
        self.started = time.monotonic()

    def step(self, label: str) -> None:
        self.done += 1
        width = 30
        filled = width * self.done // max(self.total, 1)
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"device-days ({rate:.1f}/s) {label}"
        )
        if self.tty:
            self.out.write("\r" + line.ljust(100))
            if self.done == self.total:
                self.out.write("\n")
        else:
            self.out.write(line + "\n")
        self.out.flush()


def simulate_history(
    config: Config,
    days: float,
    *,
    end: datetime | None = None,
    collector_id: str = HISTORY_ID,
    devices: Sequence[Device] | None = None,
    progress: TextIO | None = sys.stderr,
) -> HistoryResult:
    began = time.monotonic()
    chosen = list(config.devices if devices is None else devices)
    stop = end or datetime.now(UTC).replace(second=0, microsecond=0)
    live = earliest_other_minute(config.data_dir, collector_id)  # history never overlaps live
    if live is not None and live < stop:
        stop = live
    start = stop - timedelta(days=days)
    day_starts = []
    cursor = start
    while cursor < stop:
        day_starts.append(cursor)
        cursor = min(cursor + timedelta(days=1), stop)
    writer = LakeWriter(config.data_dir, collector_id)
    device_dict, metric_dict = Dictionary(), Dictionary()
    models = {dev.id: device_model(dev, config) for dev in chosen}
    bar = _Progress(len(day_starts) * len(chosen), progress) if progress else None
    readings = invalid = files = 0
    last_ts: dict[str, float] = {}
    for day_start in day_starts:
        day_end = min(day_start + timedelta(days=1), stop)
        raw_parts: list[pa.RecordBatch] = []
        poll_parts: list[pa.RecordBatch] = []
        for dev in chosen:
            ts = instants(day_start, day_end, dev.interval)
            names, matrix = model_matrix(models[dev.id], ts)
            raw, polls, bad = _device_batches(dev.id, ts, names, matrix, device_dict, metric_dict)
            raw_parts.append(raw)
            poll_parts.append(polls)
            readings += raw.num_rows
            invalid += bad
            if len(ts):
                last_ts[dev.id] = float(ts[-1])
            if bar:
                bar.step(f"{dev.id} {day_start:%Y-%m-%d}")
        files += writer.write(
            pa.Table.from_batches(raw_parts, RAW_DICT_SCHEMA),
            pa.Table.from_batches(poll_parts, POLLS_SCHEMA),
            period_us=HOUR_US,
        )
    _write_history_status(config, collector_id, stop, last_ts, chosen)
    return HistoryResult(
        start, stop, len(chosen), readings, invalid, files, time.monotonic() - began
    )


def _device_batches(
    device_id: str,
    ts: np.ndarray,
    names: tuple[str, ...],
    matrix: np.ndarray,
    device_dict: Dictionary,
    metric_dict: Dictionary,
) -> tuple[pa.RecordBatch, pa.RecordBatch, int]:
    ts_us = np.round(ts * 1_000_000).astype(np.int64)
    values = matrix.reshape(-1)
    row_ts = np.repeat(ts_us, len(names))
    metric = np.tile(metric_dict.codes(names), len(ts))
    keep = ~np.isnan(values)
    bad = int(len(values) - keep.sum())
    if bad:
        values, row_ts, metric = values[keep], row_ts[keep], metric[keep]
    device = np.full(len(values), device_dict.code(device_id), dtype=np.int32)
    raw = pa.RecordBatch.from_arrays(
        [
            pa.array(row_ts, type=TS_TYPE),
            pa.DictionaryArray.from_arrays(
                pa.array(device), pa.array(device_dict.values, pa.string())
            ),
            pa.DictionaryArray.from_arrays(
                pa.array(metric, pa.int32()), pa.array(metric_dict.values, pa.string())
            ),
            pa.array(values, type=pa.float64()),
        ],
        schema=RAW_DICT_SCHEMA,
    )
    ts_array = pa.array(ts_us, type=TS_TYPE)
    polls = pa.RecordBatch.from_arrays(
        [
            ts_array,
            pa.array(np.full(len(ts), device_id, dtype=object), pa.string()),
            pa.array(np.ones(len(ts), dtype=bool)),
            ts_array,
            ts_array,
            pa.array(np.zeros(len(ts)), pa.float64()),
            pa.array(np.ones(len(ts), dtype=np.int32)),
            pa.nulls(len(ts), pa.string()),
        ],
        schema=POLLS_SCHEMA,
    )
    return raw, polls, bad


def _write_history_status(
    config: Config,
    collector_id: str,
    end: datetime,
    last_ts: dict[str, float],
    devices: Sequence[Device],
) -> None:
    """A status file like a collector's, so the pipeline's sensor sees the history as sealed."""
    last = {dev_id: datetime.fromtimestamp(t, tz=UTC) for dev_id, t in last_ts.items()}
    devs = {dev.id: device_status("up", last.get(dev.id)) for dev in devices}
    doc = status_document(collector_id, 0, end, devs, updated_at=end, sealed_watermark=end)
    write_status(config.data_dir, doc)
