"""The InfluxDB output against a real InfluxDB 1.6 (Debian's `influxd`, started per test on a
free loopback port with its own folders), read back with InfluxQL over HTTP `/query`: exact
values and timestamps, escaped tags, an outage that loses no queued point, a wrong database
that is logged once and never retried in a loop, the overflow counted in /metrics and the
status file. The v2 API (org, bucket, token) is not installable here, so its request format is
checked against a local HTTP server that inspects path, headers and body."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from energy_pipeline.collector.state import CollectorState
from energy_pipeline.collector.status import render, status_document
from energy_pipeline.config import load_config
from energy_pipeline.live import LiveOutputs, build_outputs
from energy_pipeline.live.state import StandaloneState
from energy_pipeline.readings import PollOutcome, Sample
from energy_pipeline_tests.influx_support import Influxd
from energy_pipeline_tests.kit.ports import free_port
from energy_pipeline_tests.live_support import T0, Clock, failed, ok, until, ups_site_file

# The outage is 30 s; the behaviour (connection refused while the points queue and the
# batch waits in backoff, then everything delivered) is the same for a shorter one, which keeps
# `make test` quick. INFLUX_OUTAGE_SECONDS=30 runs the full length.
OUTAGE_SECONDS = float(os.environ.get("INFLUX_OUTAGE_SECONDS", "4"))

INFLUX = """\
outputs:
  influxdb:
    url: {url}
    database: {db}
    batch_seconds: 0.2
    backoff_initial: 0.1
    backoff_max: 0.5
{extra}"""


def live_for(
    tmp_path: Path, url: str, db: str = "energy", extra: str = "", tags: str = ""
) -> tuple[LiveOutputs, StandaloneState]:
    path = ups_site_file(tmp_path, INFLUX.format(url=url, db=db, extra=extra))
    if tags:
        path.write_text(path.read_text().replace("tags: {name: Server room UPS}", tags))
    config = load_config(path)
    state = StandaloneState(started_at=T0)
    return build_outputs(config, state, Clock()), state


async def started(live: LiveOutputs) -> None:
    for sink in live.sinks:
        await sink.start()


async def stopped(live: LiveOutputs) -> None:
    for sink in reversed(live.sinks):
        await sink.stop()


def offer(live: LiveOutputs, outcomes: list[PollOutcome]) -> None:
    for sink in live.sinks:
        sink.offer(outcomes)


def deliver(live: LiveOutputs, *ticks: list[PollOutcome], points: int) -> None:
    """Run the outputs, offer the ticks, wait until InfluxDB took `points`, stop."""

    async def main() -> None:
        await started(live)
        for tick in ticks:
            offer(live, tick)
        assert live.influxdb is not None
        await until(lambda: live.influxdb.written == points)
        await stopped(live)

    asyncio.run(main())


def test_values_and_timestamps_read_back_exact(tmp_path: Path, influxd: Influxd) -> None:
    live, _ = live_for(tmp_path, influxd.url)
    awkward = {
        "input_voltage": 0.1,
        "battery_level": 1e-7,
        "load_power": 1234.5678901234567,
        "temperature": -273.15,
        "energy_total": 123456789.123,
        "status": 1.0,
    }
    ts1 = T0 + timedelta(milliseconds=250)

    deliver(
        live,
        [ok("ups1", T0, **awkward), ok("ups2", T0, energy_total=1e21)],
        [ok("ups1", ts1, load_power=float("nan")), failed("ups2", ts1)],
        points=3,
    )
    rows = influxd.rows("SELECT * FROM energy ORDER BY time", "energy")
    by_key = {(r["device_id"], r["time"]): r for r in rows}
    assert len(rows) == 3, rows
    first = by_key[("ups1", int(T0.timestamp() * 1000))]
    assert {k: first[k] for k in awkward} == awkward
    assert first["site"] == "testsite" and first["name"] == "Server room UPS"
    assert by_key[("ups2", int(T0.timestamp() * 1000))]["energy_total"] == 1e21
    second = by_key[("ups1", int(T0.timestamp() * 1000) + 250)]
    assert second["load_power"] is None and second["input_voltage"] == 230.5
    fields = influxd.query("SHOW FIELD KEYS FROM energy", "energy")[0]["values"]
    assert dict(fields)["status"] == "integer" and dict(fields)["load_power"] == "float"


@pytest.mark.parametrize("precision", ["ns", "us", "s"])
def test_precision_and_retention_policy_reach_influxdb(
    tmp_path: Path, influxd: Influxd, precision: str
) -> None:
    influxd.query('CREATE RETENTION POLICY "kept" ON "energy" DURATION INF REPLICATION 1')
    extra = f"    precision: {precision}\n    retention_policy: kept\n"
    live, _ = live_for(tmp_path, influxd.url, extra=extra)
    ts = T0 + timedelta(seconds=3, microseconds=250_000 if precision != "s" else 0)

    deliver(live, [ok("ups1", ts)], points=1)
    rows = influxd.rows('SELECT battery_level FROM "energy"."kept"."energy"', "energy", "u")
    assert [(r["time"], r["battery_level"]) for r in rows] == [(int(ts.timestamp() * 1e6), 87.0)]
    assert influxd.rows("SELECT * FROM energy", "energy") == []  # not in the default policy


def test_tag_values_with_spaces_commas_and_equals_round_trip(
    tmp_path: Path, influxd: Influxd
) -> None:
    live, _ = live_for(
        tmp_path,
        influxd.url,
        extra="    measurement: energy live, v1\n",
        tags='tags: {name: "Hall 2, rack=A  b", "room key": "x,y=z"}',
    )

    deliver(live, [ok("ups1", T0)], points=1)
    rows = influxd.rows('SELECT * FROM "energy live, v1"', "energy")
    assert len(rows) == 1
    assert rows[0]["name"] == "Hall 2, rack=A  b" and rows[0]["room key"] == "x,y=z"
    chosen = influxd.rows(
        """SELECT battery_level FROM "energy live, v1" WHERE "name" = 'Hall 2, rack=A  b'""",
        "energy",
    )
    assert [r["battery_level"] for r in chosen] == [87.0]


@pytest.mark.slow
def test_outage_loses_no_point_the_queue_held(
    tmp_path: Path, influxd: Influxd, caplog: pytest.LogCaptureFixture
) -> None:
    live, state = live_for(tmp_path, influxd.url)
    ticks = []

    async def main() -> None:
        await started(live)
        sink = live.influxdb
        assert sink is not None
        clock_ts = T0

        def tick() -> None:
            nonlocal clock_ts
            clock_ts += timedelta(seconds=1)
            batch = [ok("ups1", clock_ts, load_power=len(ticks)), ok("ups2", clock_ts)]
            ticks.append(batch)
            offer(live, batch)

        tick()
        await until(lambda: sink.written == 2)
        influxd.stop()
        loop = asyncio.get_running_loop()
        end = loop.time() + OUTAGE_SECONDS
        while loop.time() < end:
            tick()
            await asyncio.sleep(0.1)
        assert sink.state == "retrying" and sink.failing
        assert state.output_figures is not None
        assert state.output_figures()["influxdb"]["queued"] == 2 * len(ticks) - 2
        assert b'energy_output_failing{output="influxdb"} 1.0' in live.metrics.render()
        influxd.start()
        await until(lambda: sink.written == 2 * len(ticks))
        assert sink.state == "ok" and sink.queue.dropped == 0
        await stopped(live)

    with caplog.at_level(logging.INFO, "energy_pipeline.influxdb"):
        asyncio.run(main())
    points = influxd.rows("SELECT load_power FROM energy WHERE device_id = 'ups1'", "energy")
    assert [p["load_power"] for p in points] == list(range(len(ticks)))
    assert influxd.count("energy") == 2 * len(ticks)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed" in m and "retrying" in m for m in messages) == 1, messages
    assert sum("work again" in m for m in messages) == 1, messages


def test_wrong_database_is_one_log_line_and_no_retry_loop(
    tmp_path: Path, influxd: Influxd, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-not-in-logs"
    extra = f"    username: writer\n    password: {secret}\n"
    live, state = live_for(tmp_path, influxd.url, db="nosuch", extra=extra)

    async def main() -> None:
        await started(live)
        sink = live.influxdb
        assert sink is not None
        for i in range(3):
            offer(live, [ok("ups1", T0 + timedelta(seconds=i))])
            await until(lambda i=i: sink.requests == i + 1)
        await asyncio.sleep(1.0)  # a retry loop would show as more requests by now
        assert sink.requests == 3 and sink.rejected == 3 and sink.written == 0
        assert sink.state == "rejected" and not sink.queue
        await stopped(live)

    with caplog.at_level(logging.INFO, "energy_pipeline.influxdb"):
        asyncio.run(main())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, errors
    assert "database not found" in errors[0] and "nosuch" in errors[0]
    assert "configuration problem" in errors[0]
    assert state.output_figures is not None
    figures = state.output_figures()["influxdb"]
    assert secret not in str(figures) and all(secret not in m for m in caplog.messages)


def test_overflow_counted_in_metrics_and_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens: the queue keeps the newest points, counts the rest, and says so."""
    live, _ = live_for(
        tmp_path, f"http://127.0.0.1:{free_port()}", extra="    queue_max_points: 5\n"
    )
    state = CollectorState("main", 1, T0)

    async def main() -> None:
        sink = live.influxdb
        assert sink is not None
        await sink.start()
        state.output_figures = live.figures
        for i in range(12):
            offer(live, [ok("ups1", T0 + timedelta(seconds=i))])
        await until(lambda: sink.state == "retrying")
        kept = [o.ts for o in sink.queue._items] + [o.ts for o in sink._sending]
        assert sink.queue.dropped >= 7 and T0 + timedelta(seconds=11) in kept
        text = live.metrics.render().decode()
        assert (
            f'energy_output_dropped_total{{output="influxdb"}} {float(sink.queue.dropped)}' in text
        )
        doc = status_document(state)
        assert doc["outputs"]["influxdb"]["dropped"] == sink.queue.dropped
        site = load_config(tmp_path / "site.yaml")
        assert "output influxdb: retrying" in render([{**doc, "running": True}], site)
        await sink.stop()

    with caplog.at_level(logging.INFO, "energy_pipeline.influxdb"):
        asyncio.run(main())
    assert sum("queue full" in m for m in caplog.messages) == 1, caplog.messages


class _Recorder(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted status and keeps what it received."""

    def do_POST(self) -> None:
        server = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.requests.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        status = server.script.pop(0) if server.script else 204  # type: ignore[attr-defined]
        self.send_response(status)
        payload = b'{"error":"scripted"}' if status >= 400 else b""
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: object) -> None:
        return None


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []  # type: ignore[attr-defined]
    server.script = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


V2 = """\
outputs:
  influxdb:
    url: http://127.0.0.1:{port}/prefix
    api: v2
    org: my org
    bucket: home/energy
    token: "${{INFLUX_TOKEN}}"
    precision: s
    batch_seconds: 0.1
    batch_max_points: 4
    backoff_initial: 0.05
    backoff_max: 0.1
"""


def test_v2_request_format_retries_and_split(
    tmp_path: Path, recorder: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """503 is retried, 413 halves the batch; path, headers and the gzipped body as v2 wants."""
    monkeypatch.setenv("INFLUX_TOKEN", "tok-123456")
    path = ups_site_file(tmp_path)
    path.write_text(path.read_text() + V2.format(port=recorder.server_address[1]))
    live = build_outputs(load_config(path), StandaloneState(), Clock())
    recorder.script[:] = [503, 413]  # type: ignore[attr-defined]
    outcomes = [ok("ups1", T0 + timedelta(seconds=i), status=i % 2) for i in range(4)]

    deliver(live, outcomes, points=4)
    requests = recorder.requests  # type: ignore[attr-defined]
    assert len(requests) == 4  # 503, 413 of all four, then two halves
    for request_path, headers, _ in requests:
        assert request_path == "/prefix/api/v2/write?org=my+org&bucket=home%2Fenergy&precision=s"
        assert headers["Authorization"] == "Token tok-123456"
        assert headers["Content-Encoding"] == "gzip"
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
    bodies = [gzip.decompress(body).decode() for _, _, body in requests]
    assert bodies[0] == bodies[1] and bodies[2] + bodies[3] == bodies[0]
    t0 = int(T0.timestamp())
    assert bodies[2].splitlines()[1] == (
        "energy,device_id=ups1,name=Server\\ room\\ UPS,site=testsite "
        "input_voltage=230.5,battery_level=87,load_power=412,temperature=31.5,"
        f"energy_total=1234.5,status=1i {t0 + 1}"
    )


def test_a_bad_token_is_logged_once_without_the_token(
    tmp_path: Path,
    recorder: ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "tok-wrong-654321")
    path = ups_site_file(tmp_path)
    path.write_text(path.read_text() + V2.format(port=recorder.server_address[1]))
    live = build_outputs(load_config(path), StandaloneState(), Clock())
    recorder.script[:] = [401, 401, 401]  # type: ignore[attr-defined]

    async def main() -> None:
        await started(live)
        sink = live.influxdb
        assert sink is not None
        for i in range(3):
            offer(live, [ok("ups1", T0 + timedelta(seconds=i))] * 4)
            await until(lambda i=i: sink.requests == i + 1)
        assert sink.rejected == 12 and sink.state == "rejected"
        await stopped(live)

    with caplog.at_level(logging.INFO, "energy_pipeline.influxdb"):
        asyncio.run(main())
    assert len(recorder.requests) == 3  # type: ignore[attr-defined]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "HTTP 401" in errors[0], errors
    assert "tok-wrong-654321" not in caplog.text


@pytest.mark.slow
def test_config_names_the_missing_key(tmp_path: Path) -> None:
    from energy_pipeline_tests.conftest import run_cli

    path = ups_site_file(tmp_path)
    path.write_text(
        path.read_text()
        + "outputs:\n  influxdb: {url: 'http://127.0.0.1:1', api: v2, org: o, token: t}\n"
    )
    result = run_cli("config", "validate", str(path))
    assert result.returncode == 2
    assert "site.yaml" in result.stderr and "outputs.influxdb.bucket" in result.stderr
    assert "required with api: v2" in result.stderr
    path.write_text(path.read_text().replace("api: v2, org: o, token: t", "api: v1"))
    result = run_cli("config", "validate", str(path))
    assert result.returncode == 2 and "outputs.influxdb.database" in result.stderr


def test_a_poll_without_values_sends_nothing(tmp_path: Path, recorder: ThreadingHTTPServer):
    live, _ = live_for(tmp_path, f"http://127.0.0.1:{recorder.server_address[1]}")
    empty = PollOutcome("ups1", T0, T0, T0, 1, Sample(("a",), np.array([np.nan])))

    async def main() -> None:
        await started(live)
        offer(live, [empty, failed("ups2", T0)])
        await asyncio.sleep(0.5)
        await stopped(live)

    asyncio.run(main())
    assert recorder.requests == []  # type: ignore[attr-defined]
