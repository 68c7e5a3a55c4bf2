"""The HTTP server on a free loopback port: API shapes, health, token, malformed requests,
path traversal, and /metrics checked by the real `promtool`."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from energy_pipeline.live import LiveOutputs, build_outputs
from energy_pipeline.live.state import StandaloneDevice, StandaloneState
from energy_pipeline_tests.conftest import require_program
from energy_pipeline_tests.live_support import (
    Clock,
    failed,
    http_get,
    http_raw,
    ok,
    ups_site,
)

HTTP = "outputs:\n  http: {{port: 0{extra}}}\n"


def serve(
    tmp_path: Path,
    test: Callable[[LiveOutputs, int, Clock, StandaloneState], Awaitable[None]],
    extra: str = "",
) -> None:
    config = ups_site(tmp_path, HTTP.format(extra=extra))
    clock = Clock()
    state = StandaloneState(
        started_at=clock(),
        devices={"ups1": StandaloneDevice("up", 2), "ups2": StandaloneDevice("down", 0)},
        wal_backlog_bytes=4096,
        wal_backlog_rows=17,
    )
    live = build_outputs(config, state, clock)

    async def main() -> None:
        for sink in live.sinks:
            await sink.start()
        try:
            assert live.http is not None and live.http.port
            await test(live, live.http.port, clock, state)
        finally:
            for sink in reversed(live.sinks):
                await sink.stop()

    asyncio.run(main())


def test_api_documents(tmp_path: Path) -> None:
    async def check(live: LiveOutputs, port: int, clock: Clock, state: StandaloneState) -> None:
        status, _, body = await http_get(port, "/api/health")
        assert status == 503 and json.loads(body)["status"] == "starting"
        clock.advance(1)
        for sink in live.sinks:
            sink.offer([ok("ups1", clock(), battery_level=15, status=1), failed("ups2", clock())])

        status, headers, body = await http_get(port, "/api/telemetry")
        doc = json.loads(body)
        assert status == 200 and headers["content-type"] == "application/json"
        assert doc["devices"]["ups1"]["values"]["input_voltage"] == 230.5
        assert doc["devices"]["ups2"] == {"timestamp": None, "state": "down", "values": {}}

        status, _, body = await http_get(port, "/api/telemetry/ups1")
        flat = json.loads(body)
        assert status == 200 and flat["battery_level"] == 15 and flat["status"] == "battery"
        assert flat["uptime"] == 1.0 and flat["timestamp"].endswith("Z")
        assert {a["rule"] for a in flat["alarms"]} == {"battery_level < 20", "status == 1"}

        status, _, body = await http_get(port, "/api/devices")
        devices = {d["device_id"]: d for d in json.loads(body)["devices"]}
        assert devices["ups1"]["name"] == "Server room UPS"
        assert devices["ups1"]["cards"] == [
            "input_voltage",
            "battery_level",
            "load_power",
            "energy_total",
            "status",
        ]
        assert devices["ups2"]["consecutive_failures"] == 1
        assert devices["ups2"]["last_error"] == "ups2: no answer"

        status, _, body = await http_get(port, "/api/alerts")
        alerts = json.loads(body)
        assert len(alerts["active"]) == 2 and alerts["recent"][0]["state"] == "raised"

        status, _, body = await http_get(port, "/api/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "degraded" and health["uptime"] == 1.0
        state.devices["ups1"].state = "down"
        status, _, body = await http_get(port, "/api/health")
        assert status == 503 and json.loads(body)["status"] == "down"
        state.devices["ups1"].state = state.devices["ups2"].state = "up"
        assert (await http_get(port, "/api/health"))[0] == 200
        clock.advance(60)
        status, _, body = await http_get(port, "/api/health")
        assert status == 503 and json.loads(body)["status"] == "stalled"

        status, _, body = await http_get(port, "/api/history")
        series = json.loads(body)["series"]
        assert [(s["device"], s["metric"], len(s["points"])) for s in series] == [
            ("ups1", "input_voltage", 1),
            ("ups2", "input_voltage", 0),
        ]

    serve(tmp_path, check)


def test_telemetry_body_is_reused_until_the_next_tick(tmp_path: Path) -> None:
    async def check(live: LiveOutputs, port: int, clock: Clock, _s: StandaloneState) -> None:
        live.store.offer([ok("ups1", clock())])
        assert live.http is not None
        first = live.http.api.telemetry(clock())
        assert live.http.api.telemetry(clock.advance(1)) is first
        live.store.offer([ok("ups1", clock(), load_power=1)])
        assert (
            json.loads(live.http.api.telemetry(clock()))["devices"]["ups1"]["values"]["load_power"]
            == 1
        )

    serve(tmp_path, check)


def test_malformed_requests_get_4xx_json(tmp_path: Path) -> None:
    async def check(_l: LiveOutputs, port: int, _c: Clock, _s: StandaloneState) -> None:
        cases = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET /api/telemetry\r\n\r\n", 400),
            (b"GET http://evil/ HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400),
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nX: " + b"b" * 9000 + b"\r\n\r\n", 431),
            (b"POST /api/telemetry HTTP/1.1\r\nConnection: close\r\n\r\n", 405),
            (b"GET /api/nothing HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
            (b"GET /api/telemetry/nosuch HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
        ]
        for raw, expected in cases:
            status, headers, body = await http_raw(port, raw)
            assert status == expected, raw[:40]
            assert headers["content-type"] == "application/json"
            assert json.loads(body)["status"] == expected

    serve(tmp_path, check)


TRAVERSALS = [
    "/static/../../config.py",
    "/static/..%2f..%2fconfig.py",
    "/static/%2e%2e/%2e%2e/config.py",
    "/../../../../etc/passwd",
    "/static//etc/passwd",
    "/static/app.js/../../http.py",
    "/static/",
    "/static",
    "/http.py",
    "/static/app.js%00.html",
    "/api/telemetry/../../../etc/passwd",
    "/static/..\\..\\config.py",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_dashboard_is_served(tmp_path: Path, path: str) -> None:
    async def check(_l: LiveOutputs, port: int, _c: Clock, _s: StandaloneState) -> None:
        status, _, body = await http_get(port, path)
        assert status == 404
        assert b"import" not in body and b"root:" not in body

    serve(tmp_path, check)


def test_dashboard_files_are_served_with_types(tmp_path: Path) -> None:
    async def check(_l: LiveOutputs, port: int, _c: Clock, _s: StandaloneState) -> None:
        for path, kind, marker in [
            ("/", "text/html", b"<!doctype html>"),
            ("/static/app.js", "text/javascript", b"refresh"),
            ("/static/style.css", "text/css", b".card"),
        ]:
            status, headers, body = await http_get(port, path)
            assert status == 200 and headers["content-type"].startswith(kind)
            assert marker in body and headers["x-content-type-options"] == "nosniff"
        status, headers, body = await http_get(port, "/", method="HEAD")
        assert status == 200 and int(headers["content-length"]) > 0

    serve(tmp_path, check)


def test_keep_alive_serves_several_requests_on_one_connection(tmp_path: Path) -> None:
    async def check(_l: LiveOutputs, port: int, _c: Clock, _s: StandaloneState) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(b"GET /api/alerts HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"keep-alive" in head
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        writer.close()

    serve(tmp_path, check)


def test_token_is_required_everywhere(tmp_path: Path) -> None:
    async def check(_l: LiveOutputs, port: int, _c: Clock, _s: StandaloneState) -> None:
        for path in ["/", "/static/app.js", "/api/telemetry", "/api/health", "/metrics"]:
            status, headers, body = await http_get(port, path)
            assert status == 401 and headers["www-authenticate"].startswith("Bearer")
            assert b"s3cret-token" not in body
            assert (await http_get(port, path, {"Authorization": "Bearer wrong"}))[0] == 401
            good = {"Authorization": "Bearer s3cret-token"}
            assert (await http_get(port, path, good))[0] in (200, 503)
        status, headers, _ = await http_get(port, "/?token=s3cret-token")
        assert status == 200
        cookie = headers["set-cookie"].split(";")[0]
        assert (await http_get(port, "/api/devices", {"Cookie": cookie}))[0] == 200
        assert (await http_get(port, "/api/devices", {"Cookie": "ep_token=nope"}))[0] == 401
        assert (await http_get(port, "/?token=nope"))[0] == 401

    serve(tmp_path, check, extra=", token: s3cret-token")


def promtool_check(promtool: str, body: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False, timeout=30
    )


def test_metrics_pass_promtool_and_use_labelled_families(tmp_path: Path) -> None:
    promtool = require_program("promtool")

    async def check(live: LiveOutputs, port: int, clock: Clock, _s: StandaloneState) -> None:
        for sink in live.sinks:
            sink.offer([ok("ups1", clock(), battery_level=5), failed("ups2", clock())])
        status, headers, body = await http_get(port, "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        text = body.decode()
        lint = await asyncio.to_thread(promtool_check, promtool, body)
        assert lint.returncode == 0 and lint.stdout == lint.stderr == b"", lint
        assert 'energy_reading{device="ups1",metric="input_voltage",unit="V"} 230.5' in text
        counter = 'energy_cumulative_total{device="ups1",metric="energy_total",unit="kWh"}'
        assert f"{counter} 1234.5" in text
        assert 'energy_reading{device="ups1",metric="energy_total"' not in text
        assert 'energy_poll_errors_total{device="ups2",kind="timeout"} 1.0' in text
        assert 'energy_poll_duration_seconds_count{device="ups1"} 1.0' in text
        assert 'energy_missed_ticks_total{device="ups1"} 2.0' in text
        assert 'energy_device_up{device="ups1"} 1.0' in text
        assert 'energy_device_up{device="ups2"} 0.0' in text
        assert "energy_wal_backlog_bytes 4096.0" in text
        assert "energy_wal_backlog_rows 17.0" in text
        assert 'energy_alerts_active{severity="critical"} 1.0' in text
        families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
        aliases = {f for f in families if f.startswith("ups_")}  # the UPS monitor's own names
        assert len(families - aliases) < 25

    serve(tmp_path, check)


def test_many_readings_stay_in_one_family(tmp_path: Path) -> None:
    """A Luxtronik-sized sample (1,800 values) adds series, not families."""
    import numpy as np

    from energy_pipeline.readings import PollOutcome, Sample

    promtool = require_program("promtool")

    async def check(live: LiveOutputs, port: int, clock: Clock, _s: StandaloneState) -> None:
        names = tuple(f"ID_WEB_Value_{i}" for i in range(1800))
        sample = Sample(names, np.arange(1800, dtype=np.float64))
        live.store.offer([PollOutcome("ups2", clock(), clock(), clock(), 1, sample)])
        _, _, body = await http_get(port, "/metrics")
        text = body.decode()
        assert text.count('energy_reading{device="ups2"') == 1800
        assert text.count("# TYPE energy_reading gauge") == 1
        lint = await asyncio.to_thread(promtool_check, promtool, body)
        assert lint.returncode == 0 and lint.stdout == lint.stderr == b"", lint

    serve(tmp_path, check)
