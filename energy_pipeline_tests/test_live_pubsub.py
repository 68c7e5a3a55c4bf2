"""The Pub/Sub output against Google's emulator (`gcloud beta emulators pubsub start` on a free
loopback port): retries with backoff while the topic is missing, the bounded queue counting
its overflow, the JSON records with their attributes, and a real `collect` process publishing
the HEMS record of a simulated smart meter. A `collect` without Pub/Sub never imports the
client library."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from energy_pipeline.live.hems import HEMS_KEYS
from energy_pipeline.live.pubsub import EMULATOR_ENV
from energy_pipeline_tests.conftest import REPO, cli_env, require_program
from energy_pipeline_tests.live_support import (
    collecting,
    failed,
    free_port,
    meter_ups_site,
    ok,
    outputs_for,
    ups_site,
    ups_site_file,
    wait_port,
)
from energy_pipeline_tests.test_live_webhook_file import started, until

pytestmark = pytest.mark.slow  # the Java emulator, a collector and simulators as processes

PROJECT = "test-project"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gcloud = require_program("gcloud")
    require_program("java")
    port = free_port()
    data = tmp_path_factory.mktemp("pubsub")
    log = (data / "emulator.log").open("wb")
    command = [gcloud, "beta", "emulators", "pubsub", "start", "--quiet"]
    proc = subprocess.Popen(
        [*command, f"--host-port=127.0.0.1:{port}", f"--data-dir={data}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the Java server is its child: stop the group we made
    )
    try:
        wait_port(port, timeout=90)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        log.close()


@pytest.fixture
def on_emulator(emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(EMULATOR_ENV, emulator)
    return emulator


def create(topic: str) -> str:
    """The topic and a subscription to it; returns the subscription path."""
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(PROJECT, topic)
    publisher.create_topic(name=topic_path)
    sub = subscriber.subscription_path(PROJECT, f"{topic}-sub")
    subscriber.create_subscription(name=sub, topic=topic_path)
    return sub


def pull(subscription: str, count: int, timeout: float = 30.0) -> list[Any]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        answer = subscriber.pull(subscription=subscription, max_messages=50, timeout=5)
        if answer.received_messages:
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in answer.received_messages]
            )
            got += [m.message for m in answer.received_messages]
    assert len(got) >= count, f"{len(got)} of {count} messages arrived"
    return got


PUBSUB = """\
outputs:
  pubsub: {{project: {project}, topic: {topic}, format: {format}, queue_max: 5,
           batch_max_messages: 10, batch_max_seconds: 0.05, backoff_initial: 0.05, timeout: 2}}
"""


def test_retries_until_the_topic_exists_and_counts_overflow(
    tmp_path: Path, on_emulator: str
) -> None:
    config = ups_site(tmp_path, PUBSUB.format(project=PROJECT, topic="late", format="json"))
    live, clock = outputs_for(config)
    sink = live.pubsub
    assert sink is not None
    gate = asyncio.Event()
    retried = asyncio.Event()

    async def gated_sleep(_seconds: float) -> None:
        retried.set()
        await gate.wait()

    sink.sleep = gated_sleep
    subscription: list[str] = []

    async def main() -> None:
        async with started(live):
            for i in range(12):
                sink.offer([ok("ups1", clock.advance(1), load_power=float(i))])
            assert sink.queue.dropped == 7, "queue_max 5: the 7 oldest dropped"
            await asyncio.wait_for(retried.wait(), 30)
            assert sink.published == 0 and sink.attempts == 1, "NOT_FOUND: retry after backoff"
            subscription.append(await asyncio.to_thread(create, "late"))
            gate.set()
            await until(lambda: sink.published == 5, 30)
            sink.offer([failed("ups2", clock.advance(1))])
            await until(lambda: sink.published == 6, 30)
            assert b'energy_output_dropped_total{output="pubsub"} 7.0' in live.metrics.render()

    asyncio.run(main())
    messages = pull(subscription[0], 6)
    records = [json.loads(m.data) for m in messages]
    readings = sorted((r for r in records if r["ok"]), key=lambda r: r["timestamp"])
    assert [r["values"]["load_power"] for r in readings] == [7.0, 8.0, 9.0, 10.0, 11.0]
    down = [r for r in records if not r["ok"]]
    assert len(down) == 1 and down[0]["error_kind"] == "timeout"
    attrs = {(m.attributes["device_id"], m.attributes["site"]) for m in messages}
    assert attrs == {("ups1", "testsite"), ("ups2", "testsite")}
    assert sink.failed == 0


def test_collect_publishes_hems_records_of_a_simulated_meter(
    tmp_path: Path, on_emulator: str
) -> None:
    subscription = create("hems")
    config = tmp_path / "site.yaml"
    config.write_text(
        meter_ups_site(f"  pubsub: {{project: {PROJECT}, topic: hems, format: hems}}\n")
    )
    with collecting(config) as collector:
        messages = pull(subscription, 2)
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(20) == 0
    assert {m.attributes["device_id"] for m in messages} == {"meter1"}, "only the meter"
    record = json.loads(messages[0].data)
    assert list(record) == list(HEMS_KEYS)
    assert record["timestamp"].endswith("Z") and record["historical_timestamp"].endswith("Z")
    assert 100 < record["instant_power_w"] < 10_000


def test_collect_without_pubsub_never_imports_the_client(tmp_path: Path) -> None:
    path = ups_site_file(tmp_path, "outputs:\n  stdout: {}\n  http: {port: 0}\n")
    probe = (
        "import sys\n"
        "from energy_pipeline.config import load_config\n"
        "from energy_pipeline.live import build_outputs\n"
        "from energy_pipeline.live.state import StandaloneState\n"
        "from datetime import UTC, datetime\n"
        f"build_outputs(load_config({str(path)!r}),"
        " StandaloneState(started_at=datetime.now(UTC)))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('google', 'grpc'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=REPO,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout
