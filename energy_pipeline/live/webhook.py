"""Webhook output: readings and alert events POSTed as JSON batches. One delivery at a time,
retried with capped exponential backoff; meanwhile new items wait in a bounded drop-oldest
queue. With a secret, `X-Energy-Pipeline-Signature: sha256=<hex>` is the HMAC-SHA256 of the
exact body, so the receiver can verify it came from us; `X-Energy-Pipeline-Delivery` stays the
same across retries of one batch so the receiver can drop duplicates. With `record: hems` each
smart-meter reading is POSTed alone as the HEMS seed's flat record (what its receivers parse),
with the device in `X-Energy-Pipeline-Device`; alert events are not sent in that form."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from energy_pipeline import __version__
from energy_pipeline.config import WebhookOutput
from energy_pipeline.live.alerts import AlertEvent
from energy_pipeline.live.hems import HemsRecords
from energy_pipeline.live.queue import DropOldestQueue
from energy_pipeline.live.records import iso, outcome_record
from energy_pipeline.readings import PollOutcome

log = logging.getLogger("energy_pipeline.webhook")

SIGNATURE_HEADER = "X-Energy-Pipeline-Signature"
DELIVERY_HEADER = "X-Energy-Pipeline-Delivery"
DEVICE_HEADER = "X-Energy-Pipeline-Device"


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSink:
    def __init__(
        self,
        cfg: WebhookOutput,
        site: str,
        clock: Callable[[], datetime],
        hems: HemsRecords,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.cfg = cfg
        self.hems = hems if cfg.record == "hems" else None
        self.site = site
        self.clock = clock
        self.sleep = sleep
        self.queue: DropOldestQueue[PollOutcome | AlertEvent] = DropOldestQueue(cfg.queue_size)
        self.delivered = 0
        self.failed = 0
        self.attempts = 0
        self._secret = cfg.secret.get_secret_value().encode() if cfg.secret else None
        self._task: asyncio.Task[None] | None = None
        # Its own thread: a webhook that hangs until the timeout must never hold one of the
        # default executor's threads, which the collector uses for durable writes.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="webhook")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._thread.shutdown(wait=False, cancel_futures=True)

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        for outcome in outcomes:
            if self.hems is None or (outcome.ok and outcome.device_id in self.hems.devices):
                self.queue.put(outcome)

    def offer_alert(self, event: AlertEvent) -> None:
        if self.hems is None:
            self.queue.put(event)

    async def body(self, batch: list[PollOutcome | AlertEvent]) -> bytes:
        """The batch as one JSON document, serialised an event at a time with a yield between
        them, so a batch of large samples never holds the event loop for long at once."""
        parts: list[str] = []
        for item in batch:
            record = item.to_json() if isinstance(item, AlertEvent) else outcome_record(item)
            parts.append(json.dumps(record, separators=(",", ":")))
            await asyncio.sleep(0)
        head = json.dumps({"site": self.site, "sent_at": iso(self.clock())})[:-1]
        return f'{head},"events":[{",".join(parts)}]}}'.encode()

    async def _run(self) -> None:
        while True:
            batch = await self.queue.get_batch(self.cfg.batch_size)
            if self.hems is None:
                await self._deliver(await self.body(batch))
                continue
            for item in batch:
                assert isinstance(item, PollOutcome)
                record = self.hems.record(item)
                if record is not None:
                    body = json.dumps(record, separators=(",", ":")).encode()
                    await self._deliver(body, {DEVICE_HEADER: item.device_id})

    async def _deliver(self, body: bytes, extra: dict[str, str] | None = None) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"energy_pipeline/{__version__}",
            DELIVERY_HEADER: uuid.uuid4().hex,
            **(extra or {}),
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        delay = self.cfg.backoff_initial
        for attempt in range(1, self.cfg.max_attempts + 1):
            self.attempts += 1
            loop = asyncio.get_running_loop()
            problem = await loop.run_in_executor(self._thread, self._post, body, headers)
            if problem is None:
                self.delivered += 1
                return
            if attempt == self.cfg.max_attempts:
                break
            log.warning(f"webhook attempt {attempt} failed: {problem}; retrying in {delay:g} s")
            await self.sleep(delay)
            delay = min(delay * 2, self.cfg.backoff_max)
        self.failed += 1
        log.error(f"webhook batch dropped after {self.cfg.max_attempts} attempts")

    def _post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None on a 2xx answer, else what went wrong (runs in a worker thread)."""
        request = urllib.request.Request(self.cfg.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.timeout) as response:
                response.read()
                return None
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return str(getattr(exc, "reason", exc))
