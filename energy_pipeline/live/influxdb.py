"""InfluxDB output: one point per successful poll, at the poll's scheduled instant (the lake's
`ts`), fields = the poll's values (states as integers), tags = `device_id`, `site` and the
device's `tags:`, so Grafana dashboards that read an InfluxDB keep working beside the lake.

Points wait in a bounded drop-oldest queue (`queue_max_points`; what overflows is counted and
`energy-pipeline export influxdb` refills it from the lake). A batch leaves `batch_seconds`
after points started waiting, or as soon as `batch_max_points` are queued; it is encoded,
gzipped and POSTed by a worker thread of its own, so neither the encoding nor an InfluxDB that
hangs until the timeout ever holds the event loop the polls run on. 5xx answers, 429 and
connection errors are retried with capped exponential backoff, the batch going back to the
front of the queue meanwhile; 413 splits the batch; any other 4xx (unknown database, bad
token) is a configuration problem: logged once, the batch dropped and counted, never retried
in a loop. State changes are logged once each; credentials travel in headers, never in a URL
or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from energy_pipeline import __version__
from energy_pipeline.catalog import DeviceMeaning
from energy_pipeline.config import Config, InfluxOutput
from energy_pipeline.live.lineprotocol import PointEncoder
from energy_pipeline.live.queue import DropOldestQueue
from energy_pipeline.logs import redact
from energy_pipeline.readings import PollOutcome

log = logging.getLogger("energy_pipeline.influxdb")

GZIP_LEVEL = 1  # line protocol shrinks ~10x even at the fastest level
_V1_PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}

Verdict = Literal["ok", "retry", "reject", "too_large"]


@dataclass(frozen=True, slots=True)
class WriteResult:
    verdict: Verdict
    detail: str = ""
    retry_after: float | None = None


def write_url(cfg: InfluxOutput) -> str:
    base = cfg.url.rstrip("/")
    if cfg.api == "v2":
        query = {"org": cfg.org, "bucket": cfg.bucket, "precision": cfg.precision}
        return f"{base}/api/v2/write?{urllib.parse.urlencode(query)}"
    params = {"db": cfg.database, "precision": _V1_PRECISION[cfg.precision]}
    if cfg.retention_policy:
        params["rp"] = cfg.retention_policy
    return f"{base}/write?{urllib.parse.urlencode(params)}"


def request_headers(cfg: InfluxOutput) -> dict[str, str]:
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Encoding": "gzip",
        "User-Agent": f"energy_pipeline/{__version__}",
    }
    if cfg.token is not None:
        headers["Authorization"] = f"Token {cfg.token.get_secret_value()}"
    elif cfg.username is not None:
        password = cfg.password.get_secret_value() if cfg.password else ""
        pair = base64.b64encode(f"{cfg.username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    return headers


def describe(cfg: InfluxOutput) -> str:
    """The target as a log line may name it: no credentials."""
    where = f"db {cfg.database}" if cfg.api == "v1" else f"org {cfg.org} bucket {cfg.bucket}"
    return f"{cfg.url} ({cfg.api}, {where})"


def _server_error(exc: urllib.error.HTTPError) -> str:
    """InfluxDB's own words (`{"error": "database not found: ..."}`), else the status."""
    try:
        text = exc.read(2000).decode("utf-8", "replace")
    except OSError:
        text = ""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        text = str(doc.get("error") or doc.get("message") or text)
    return f"HTTP {exc.code}: {text.strip()[:300] or exc.reason}"


class InfluxWriter:
    """POSTs line protocol to one configured InfluxDB (blocking: run it in a worker thread)."""

    def __init__(self, cfg: InfluxOutput):
        self.cfg = cfg
        self.url = write_url(cfg)
        self.headers = request_headers(cfg)
        self.target = describe(cfg)

    def post(self, lines: bytes) -> WriteResult:
        body = gzip.compress(lines, compresslevel=GZIP_LEVEL)
        request = urllib.request.Request(self.url, body, self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.timeout) as response:
                response.read()
                return WriteResult("ok")
        except urllib.error.HTTPError as exc:
            detail = redact(_server_error(exc))
            if exc.code == 413:
                return WriteResult("too_large", detail)
            if exc.code == 429 or exc.code >= 500:
                return WriteResult("retry", detail, _retry_after(exc))
            return WriteResult("reject", detail)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            return WriteResult("retry", redact(str(getattr(exc, "reason", exc)) or repr(exc)))


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    try:
        return float(exc.headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return None


def point_encoder(
    config: Config, cfg: InfluxOutput, meta: dict[str, DeviceMeaning]
) -> PointEncoder:
    """Tags from the config (`site`, the device's `tags:`), integer fields from the catalog's
    state metrics, so a state is an integer field from its first point on (InfluxDB refuses a
    field that changes type)."""
    states = {
        device: frozenset(n for n, m in dm.metrics.items() if m.kind == "state")
        for device, dm in meta.items()
    }
    return PointEncoder(
        cfg.measurement,
        cfg.precision,
        {dev.id: dev.tags for dev in config.devices},
        states,
        {"site": config.site.name},
    )


class InfluxSink:
    def __init__(
        self,
        cfg: InfluxOutput,
        encoder: PointEncoder,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.cfg = cfg
        self.encoder = encoder
        self.writer = InfluxWriter(cfg)
        self.sleep = sleep
        self.queue: DropOldestQueue[PollOutcome] = DropOldestQueue(cfg.queue_max_points)
        self.written = 0
        self.rejected = 0
        self.requests = 0
        self.state = "idle"
        self.last_error: str | None = None
        self._delay = cfg.backoff_initial
        self._drops_seen = 0
        self._dropping = False
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: list[PollOutcome] = []
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="influxdb")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="influxdb")

    async def stop(self) -> None:
        """Send what is queued, once: the first failure ends it (no retries, no waiting out
        one timeout per batch), the lake keeps the rest for a backfill."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        rest = self._sending + (await self.queue.get_batch(len(self.queue)) if self.queue else [])
        loop = asyncio.get_running_loop()
        for i in range(0, len(rest), self.cfg.batch_max_points):
            batch = rest[i : i + self.cfg.batch_max_points]
            result = await loop.run_in_executor(self._thread, self._send, batch)
            if not self._account(batch, result):
                log.warning(
                    f"influxdb: {len(rest) - i} points not written at shutdown; "
                    "`energy-pipeline export influxdb` writes them from the lake"
                )
                break
        self._thread.shutdown(wait=False, cancel_futures=True)

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        for outcome in outcomes:
            if outcome.ok:
                self.queue.put(outcome)
        if len(self.queue) >= self.cfg.batch_max_points:
            self._full.set()
        if self.queue.dropped > self._drops_seen and not self._dropping:
            log.warning(
                f"influxdb queue full ({self.cfg.queue_max_points} points): dropping the oldest; "
                "`energy-pipeline export influxdb` writes them from the lake later"
            )
            self._dropping = True
        self._drops_seen = self.queue.dropped

    def figures(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "written": self.written,
            "queued": len(self.queue) + len(self._sending),
            "dropped": self.queue.dropped,
            "rejected": self.rejected,
            "requests": self.requests,
            "last_error": self.last_error,
        }

    @property
    def failing(self) -> bool:
        return self.state in ("retrying", "rejected")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.queue.wait()
            if self.state != "retrying" and len(self.queue) < self.cfg.batch_max_points:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.cfg.batch_seconds)
            self._sending = await self.queue.get_batch(self.cfg.batch_max_points)
            result = await asyncio.shield(
                loop.run_in_executor(self._thread, self._send, self._sending)
            )
            batch, self._sending = self._sending, []
            if self._account(batch, result):
                continue
            self.queue.put_front(batch)
            wait = max(self._delay, min(result.retry_after or 0.0, self.cfg.backoff_max))
            self._delay = min(self._delay * 2, self.cfg.backoff_max)
            await self.sleep(wait)

    def _send(self, batch: list[PollOutcome]) -> WriteResult:
        """Encode and POST (worker thread); a batch too large for the server goes in halves."""
        body = self.encoder.outcomes(batch)
        if not body:
            return WriteResult("ok")
        self.requests += 1
        result = self.writer.post(body)
        if result.verdict != "too_large" or len(batch) == 1:
            return result
        half = len(batch) // 2
        first = self._send(batch[:half])
        return first if first.verdict != "ok" else self._send(batch[half:])

    def _account(self, batch: list[PollOutcome], result: WriteResult) -> bool:
        """Count the result and log a change of state; False when the batch is to be retried."""
        if result.verdict == "ok":
            if self.failing:
                log.info(f"influxdb writes to {self.writer.target} work again")
            self.written += len(batch)
            self.state, self.last_error, self._delay = "ok", None, self.cfg.backoff_initial
            self._dropping = False
            return True
        self.last_error = result.detail
        if result.verdict == "retry":
            if self.state != "retrying":
                log.warning(
                    f"influxdb write to {self.writer.target} failed: {result.detail}; "
                    f"retrying with backoff up to {self.cfg.backoff_max:g} s, "
                    f"{len(self.queue) + len(batch)} points queued"
                )
            self.state = "retrying"
            return False
        if self.state != "rejected":
            log.error(
                f"influxdb refused the write, a configuration problem: {result.detail} "
                f"(target {self.writer.target}); its points are dropped and counted, "
                "not retried, until the configuration or the server is fixed"
            )
        self.state = "rejected"
        self.rejected += len(batch)
        return True
