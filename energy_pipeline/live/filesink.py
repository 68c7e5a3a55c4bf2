"""File output, the HEMS seed's: one record per successful poll, as JSON lines or CSV (keys
as header), rotated at the site's local midnight: `readings-<day>.jsonl` for all devices, or
`<device>-<day>.csv` per device. Records are `timestamp` (UTC ISO), `device_id`, then the
metrics; with `record: hems`, the HEMS seed's flat record, one file per meter and day (the
record itself names no device). They are serialised on the event loop one per step and appended
in batches by a worker thread. A CSV whose metric set changes mid-day continues in a new part
file rather than misaligning columns."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import zoneinfo
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from energy_pipeline.config import FileOutput
from energy_pipeline.live.hems import HemsRecords
from energy_pipeline.live.queue import DropOldestQueue
from energy_pipeline.live.records import flat_record
from energy_pipeline.readings import PollOutcome

log = logging.getLogger("energy_pipeline.file")

BATCH = 500
HEADER_CACHE = 1000


@dataclass(frozen=True, slots=True)
class _Row:
    outcome: PollOutcome
    keys: list[str] | None
    line: str


class FileSink:
    def __init__(self, cfg: FileOutput, folder: Path, timezone: str, hems: HemsRecords):
        self.cfg = cfg
        self.hems = hems if cfg.record == "hems" else None
        self.folder = folder
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.queue: DropOldestQueue[PollOutcome] = DropOldestQueue(cfg.queue_size)
        self.written = 0
        self._headers: dict[Path, list[str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="file-output")
        self._writing: asyncio.Future[None] | None = None
        self._encoding: list[PollOutcome] = []

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name="file-output")

    async def stop(self) -> None:
        """Finish the write in progress, then write what is still queued."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)
        rest = self._encoding + (await self.queue.get_batch(len(self.queue)) if self.queue else [])
        if rest:
            rows = [self.encode(o) for o in rest]
            await asyncio.get_running_loop().run_in_executor(
                self._thread, self._append_logged, rows
            )
        self._thread.shutdown(wait=False)

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        for outcome in outcomes:
            if outcome.ok and (self.hems is None or outcome.device_id in self.hems.devices):
                self.queue.put(outcome)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._encoding = await self.queue.get_batch(BATCH)
            rows = []
            for outcome in self._encoding:
                rows.append(self.encode(outcome))
                await asyncio.sleep(0)  # one record per loop step, however many values it has
            self._encoding = []
            self._writing = loop.run_in_executor(self._thread, self._append_logged, rows)
            await asyncio.shield(self._writing)

    def _append_logged(self, rows: list[_Row]) -> None:
        try:
            self.append(rows)
        except OSError as exc:
            log.error(f"file output: {exc}; {len(rows)} records lost")

    def path_for(self, outcome: PollOutcome, part: int = 0) -> Path:
        """JSON lines carry the device id, so all devices share one file a day (one append per
        batch); CSV columns differ per device, so CSV files are per device and day."""
        day = outcome.ts.astimezone(self.zone).date().isoformat()
        if self.cfg.format == "jsonl":
            if self.hems is not None:
                return self.folder / f"{outcome.device_id}-{day}.jsonl"
            return self.folder / f"readings-{day}.jsonl"
        suffix = f".{part}" if part else ""
        return self.folder / f"{outcome.device_id}-{day}{suffix}.csv"

    def encode(self, outcome: PollOutcome) -> _Row:
        """The record's text (serialisation happens on the loop, in small steps)."""
        record = self.hems.record(outcome) if self.hems is not None else None
        if record is None:
            record = flat_record(outcome)
        if self.cfg.format == "jsonl":
            return _Row(outcome, None, json.dumps(record) + "\n")
        return _Row(outcome, list(record), _csv_line(list(record.values())))

    def append(self, rows: list[_Row]) -> None:
        """Append to each record's file, headers first for new CSV files (worker thread)."""
        chunks: dict[Path, list[str]] = {}
        for row in rows:
            if row.keys is None:
                chunks.setdefault(self.path_for(row.outcome), []).append(row.line)
                continue
            path, header = self._csv_target(row.outcome, row.keys)
            lines = chunks.setdefault(path, [])
            if header:
                lines.append(_csv_line(header))
            lines.append(row.line)
        for path, lines in chunks.items():
            with path.open("a", encoding="utf-8", newline="") as f:
                f.writelines(lines)
        self.written += len(rows)

    def _csv_target(self, outcome: PollOutcome, keys: list[str]) -> tuple[Path, list[str] | None]:
        """The file this record belongs in, and the header to write first if it is new."""
        if len(self._headers) > HEADER_CACHE:
            self._headers.clear()  # only a cache of files' first lines; re-read on demand
        part = 0
        while True:
            path = self.path_for(outcome, part)
            known = self._headers.get(path)
            if known is None and path.exists():
                with path.open(encoding="utf-8", newline="") as f:
                    known = next(csv.reader(f), [])
                self._headers[path] = known
            if known is None:
                self._headers[path] = keys
                return path, keys
            if known == keys:
                return path, None
            part += 1


def _csv_line(values: list[object]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()
