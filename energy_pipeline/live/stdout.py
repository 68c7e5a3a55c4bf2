"""Standard output as a live output, for piping (`collect | jq`, `collect | my-importer`): one
JSON line per successful poll — `timestamp`, `device_id` and the metrics, or with `format: hems`
the HEMS seed's flat record. Logs stay on stderr, so stdout carries nothing else. Lines are
serialised on the event loop one per step and written by a worker thread, so a reader that
stops reading fills only our bounded queue; a reader that leaves ends the output, not the
collector."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from energy_pipeline.config import StdoutOutput
from energy_pipeline.live.hems import HemsRecords
from energy_pipeline.live.queue import DropOldestQueue
from energy_pipeline.live.records import flat_record
from energy_pipeline.readings import PollOutcome

log = logging.getLogger("energy_pipeline.stdout")

BATCH = 500


class StdoutSink:
    def __init__(self, cfg: StdoutOutput, hems: HemsRecords, stream: BinaryIO | None = None):
        self.cfg = cfg
        self.hems = hems if cfg.format == "hems" else None
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.queue: DropOldestQueue[PollOutcome] = DropOldestQueue(cfg.queue_size)
        self.written = 0
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="stdout-output")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stdout-output")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        rest = await self.queue.get_batch(len(self.queue)) if self.queue else []
        if rest and not self.closed:
            lines = [line for line in map(self.encode, rest) if line]
            await asyncio.get_running_loop().run_in_executor(self._thread, self._write, lines)
        self._thread.shutdown(wait=True)

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        if self.closed:
            return
        for outcome in outcomes:
            if outcome.ok and (self.hems is None or outcome.device_id in self.hems.devices):
                self.queue.put(outcome)

    def encode(self, outcome: PollOutcome) -> bytes:
        record = self.hems.record(outcome) if self.hems is not None else flat_record(outcome)
        return b"" if record is None else (json.dumps(record) + "\n").encode()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            lines = []
            for outcome in await self.queue.get_batch(BATCH):
                lines.append(self.encode(outcome))
                await asyncio.sleep(0)  # one record per loop step
            await asyncio.shield(loop.run_in_executor(self._thread, self._write, lines))

    def _write(self, lines: list[bytes]) -> None:
        """Write and flush (worker thread): a pipe's reader sees each batch at once."""
        try:
            self.stream.write(b"".join(lines))
            self.stream.flush()
            self.written += sum(1 for line in lines if line)
        except (BrokenPipeError, ValueError, OSError) as exc:
            self.closed = True
            log.warning(f"stdout output: the reader went away ({exc}); no more records")
