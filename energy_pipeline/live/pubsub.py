"""Google Cloud Pub/Sub output (the HEMS seed's cloud path), with the official client.

One message per reading: `format: json` sends this product's reading record (failed polls
too, with their error), `format: hems` the HEMS seed's flat record for each smart-meter
reading; attributes `device_id` and `site` let subscribers filter without parsing. Readings wait
in a bounded drop-oldest queue (`queue_max`, overflow counted); a batch of up to
`batch_max_messages` is handed to the client, which sends it as one request once full or
after `batch_max_seconds`. A batch that fails is retried with capped exponential backoff, then
dropped and counted; trouble is logged once when it starts and once when it ends.

The client library is imported only when this output starts, so `collect` without Pub/Sub
never loads it (or grpc). It honours PUBSUB_EMULATOR_HOST by itself: set, it talks to the
emulator there without credentials; unset, it finds Google credentials the usual way."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any

from energy_pipeline.config import PubsubOutput
from energy_pipeline.live.hems import HemsRecords
from energy_pipeline.live.queue import DropOldestQueue
from energy_pipeline.live.records import outcome_record
from energy_pipeline.readings import PollOutcome

log = logging.getLogger("energy_pipeline.pubsub")

EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"


class PubsubSink:
    def __init__(
        self,
        cfg: PubsubOutput,
        site: str,
        hems: HemsRecords,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.cfg = cfg
        self.site = site
        self.hems = hems if cfg.format == "hems" else None
        self.sleep = sleep
        self.queue: DropOldestQueue[PollOutcome] = DropOldestQueue(cfg.queue_max)
        self.published = 0
        self.failed = 0
        self.attempts = 0
        self._client: Any = None
        self._retry: Any = None
        self._topic = ""
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pubsub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is None:
            return
        rest = await self.queue.get_batch(len(self.queue)) if self.queue else []
        if rest:
            await self._publish(self._messages(rest))
        await asyncio.to_thread(self._client.stop)

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        for outcome in outcomes:
            if self.hems is None or (outcome.ok and outcome.device_id in self.hems.devices):
                self.queue.put(outcome)

    def _connect(self) -> None:
        """Import and build the client (worker thread: importing grpc takes a while)."""
        from google.api_core.retry import Retry
        from google.cloud import pubsub_v1

        settings = pubsub_v1.types.BatchSettings(
            max_messages=self.cfg.batch_max_messages, max_latency=self.cfg.batch_max_seconds
        )
        self._client = pubsub_v1.PublisherClient(batch_settings=settings)
        self._retry = Retry(timeout=self.cfg.timeout)
        self._topic = self._client.topic_path(self.cfg.project, self.cfg.topic)
        where = os.environ.get(EMULATOR_ENV)
        log.info(
            f"pubsub publishing to {self._topic}" + (f" on the emulator {where}" if where else "")
        )

    def _messages(self, batch: list[PollOutcome]) -> list[tuple[bytes, str]]:
        out = []
        for outcome in batch:
            record = self.hems.record(outcome) if self.hems is not None else outcome_record(outcome)
            if record is not None:
                out.append((json.dumps(record, separators=(",", ":")).encode(), outcome.device_id))
        return out

    async def _run(self) -> None:
        try:
            await asyncio.to_thread(self._connect)
        except ImportError:
            log.error("pubsub output needs the client: pip install 'energy-pipeline[pubsub]'")
            return
        except Exception as exc:  # no credentials, bad project: polling must go on regardless
            log.error(f"pubsub output disabled: {type(exc).__name__}: {exc}")
            return
        while True:
            batch = await self.queue.get_batch(self.cfg.batch_max_messages)
            messages = self._messages(batch)
            delay = self.cfg.backoff_initial
            for attempt in range(1, self.cfg.max_attempts + 1):
                messages, problem = await self._publish(messages)
                if not messages:
                    self._recovered()
                    break
                if attempt == self.cfg.max_attempts:
                    self.failed += len(messages)
                    log.error(f"pubsub: {len(messages)} messages dropped after {attempt} attempts")
                    break
                self._trouble(problem, delay)
                await self.sleep(delay)
                delay = min(delay * 2, self.cfg.backoff_max)

    async def _publish(
        self, messages: list[tuple[bytes, str]]
    ) -> tuple[list[tuple[bytes, str]], str]:
        """Hand the batch to the client and wait for it; returns what failed and why."""
        self.attempts += 1
        futures: list[Future[str]] = [
            self._client.publish(
                self._topic,
                data,
                retry=self._retry,
                timeout=self.cfg.timeout,
                device_id=device,
                site=self.site,
            )
            for data, device in messages
        ]
        results = await asyncio.gather(
            *(asyncio.wrap_future(f) for f in futures), return_exceptions=True
        )
        failed = [m for m, r in zip(messages, results, strict=True) if isinstance(r, BaseException)]
        self.published += len(messages) - len(failed)
        problem = next((str(r) for r in results if isinstance(r, BaseException)), "")
        return failed, problem

    def _trouble(self, problem: str, delay: float) -> None:
        if not self._failing:
            self._failing = True
            log.warning(f"pubsub publish failed: {problem}; retrying with backoff from {delay:g} s")

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("pubsub publishing again")
