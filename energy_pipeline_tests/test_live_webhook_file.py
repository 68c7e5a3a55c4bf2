"""Webhook against a local HTTP receiver that fails the first attempts; file output as JSON
lines and CSV, rotated at the site's local midnight."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from energy_pipeline.live import LiveOutputs, build_outputs
from energy_pipeline.live.state import StandaloneState
from energy_pipeline.live.webhook import DELIVERY_HEADER, SIGNATURE_HEADER
from energy_pipeline.readings import PollOutcome, Sample
from energy_pipeline_tests.live_support import T0, Clock, failed, ok, until, ups_site, ups_site_file


class Receiver:
    """Answers 503 to the first `failures` POSTs, then 200; keeps what it got."""

    def __init__(self, failures: int):
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code = 503 if len(receiver.requests) < receiver.failures else 200
                receiver.requests.append((dict(self.headers), body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.close()


WEBHOOK = """\
outputs:
  webhook:
    url: http://127.0.0.1:{port}/hook
    secret: "${{HOOK_SECRET}}"
    backoff_initial: 0.05
    max_attempts: 4
    batch_size: 50
"""


def started(live: LiveOutputs):
    class Running:
        async def __aenter__(self) -> LiveOutputs:
            for sink in live.sinks:
                await sink.start()
            return live

        async def __aexit__(self, *_exc: object) -> None:
            for sink in reversed(live.sinks):
                await sink.stop()

    return Running()


def test_webhook_retries_with_backoff_and_signs_batches(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "hook-secret-value")
    from energy_pipeline.config import load_config

    path = ups_site_file(tmp_path, WEBHOOK.format(port=receiver.port))
    config = load_config(path)
    clock = Clock()
    live = build_outputs(config, StandaloneState(started_at=clock()), clock)

    async def main() -> None:
        async with started(live):
            hook = live.webhook
            assert hook is not None
            for sink in live.sinks:
                sink.offer([ok("ups1", clock(), battery_level=10), failed("ups2", clock())])
            await until(lambda: hook.delivered == 1)
            assert hook.attempts == 3 and hook.failed == 0

    asyncio.run(main())
    assert [code for _, _, code in receiver.requests] == [503, 503, 200]
    bodies = {body for _, body, _ in receiver.requests}
    deliveries = {h[DELIVERY_HEADER] for h, _, _ in receiver.requests}
    assert len(bodies) == 1 and len(deliveries) == 1, "a retry resends the same batch"
    headers, body, _ = receiver.requests[-1]
    expected = "sha256=" + hmac.new(b"hook-secret-value", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected
    doc = json.loads(body)
    assert doc["site"] == "testsite"
    kinds = [(e["type"], e["device_id"]) for e in doc["events"]]
    assert kinds == [("reading", "ups1"), ("reading", "ups2"), ("alert", "ups1")]
    reading, down, alert = doc["events"]
    assert reading["values"]["battery_level"] == 10 and reading["ok"] is True
    assert down["ok"] is False and down["error_kind"] == "timeout"
    assert alert["state"] == "raised" and alert["rule"] == "battery_level < 20"


def test_webhook_gives_up_after_max_attempts_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "hook-secret-value")
    receiver = Receiver(failures=4)
    try:
        from energy_pipeline.config import load_config

        path = ups_site_file(tmp_path, WEBHOOK.format(port=receiver.port))
        clock = Clock()
        live = build_outputs(load_config(path), StandaloneState(started_at=clock()), clock)

        async def main() -> None:
            async with started(live):
                hook = live.webhook
                assert hook is not None
                hook.offer([ok("ups1", clock())])
                await until(lambda: hook.failed == 1)
                hook.offer([ok("ups1", clock.advance(1))])
                await until(lambda: hook.delivered == 1)

        asyncio.run(main())
        assert [c for _, _, c in receiver.requests] == [503, 503, 503, 503, 200]
    finally:
        receiver.close()


def test_file_output_jsonl_rotates_at_local_midnight(tmp_path: Path) -> None:
    config = ups_site(tmp_path, "outputs:\n  file: {path: out, format: jsonl}\n")
    # Europe/Berlin: 22:59:59 UTC is 23:59:59 local on 1 March; 23:00 UTC is 2 March.
    before = T0.replace(hour=22, minute=59, second=59)
    after = before + timedelta(seconds=1)
    clock = Clock(before)
    live = build_outputs(config, StandaloneState(started_at=clock()), clock)

    async def main() -> None:
        async with started(live):
            for sink in live.sinks:
                sink.offer([ok("ups1", before), failed("ups2", before), ok("ups2", before)])
                sink.offer([ok("ups1", after, load_power=1.5)])

    asyncio.run(main())
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "readings-2026-03-01.jsonl",
        "readings-2026-03-02.jsonl",
    ]
    first = [json.loads(x) for x in (out / "readings-2026-03-01.jsonl").read_text().splitlines()]
    second = [json.loads(x) for x in (out / "readings-2026-03-02.jsonl").read_text().splitlines()]
    assert first[0]["timestamp"] == "2026-03-01T22:59:59.000Z"
    assert first[0]["device_id"] == "ups1" and first[0]["input_voltage"] == 230.5
    assert [r["device_id"] for r in first] == ["ups1", "ups2"], "failed polls are not records"
    assert len(second) == 1 and second[0]["load_power"] == 1.5


def test_file_output_csv_keeps_header_and_splits_on_new_columns(tmp_path: Path) -> None:
    config = ups_site(tmp_path, "outputs:\n  file: {path: out, format: csv}\n")
    clock = Clock()
    live = build_outputs(config, StandaloneState(started_at=clock()), clock)
    other = Sample(("instant_power_w",), np.array([321.0]))

    async def main() -> None:
        async with started(live):
            assert live.file is not None
            live.file.offer([ok("ups1", clock())])
            live.file.offer([ok("ups1", clock.advance(60), load_power=7.0)])
            live.file.offer([PollOutcome("ups1", clock(), clock(), clock(), 1, other)])
            await until(lambda: live.file.written == 3)
        # A second run appends to the same day's file without a second header.
        live2 = build_outputs(config, StandaloneState(started_at=clock()), clock)
        async with started(live2):
            assert live2.file is not None
            live2.file.offer([ok("ups1", clock.advance(60), load_power=8.0)])

    asyncio.run(main())
    with (tmp_path / "out" / "ups1-2026-03-01.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "timestamp",
        "device_id",
        "input_voltage",
        "battery_level",
        "load_power",
        "temperature",
        "energy_total",
        "status",
    ]
    assert [r[4] for r in rows[1:]] == ["412.0", "7.0", "8.0"]
    with (tmp_path / "out" / "ups1-2026-03-01.1.csv").open() as f:
        assert list(csv.reader(f)) == [
            ["timestamp", "device_id", "instant_power_w"],
            ["2026-03-01T12:01:00.000Z", "ups1", "321.0"],
        ]
