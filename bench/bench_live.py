"""Live outputs benchmark: do the outputs cost the collector's polls anything?

In one run, the real collector (`python -m energy_pipeline collect`) polls N simulated Janitza
analysers plus one Luxtronik-sized device (1,800 values) every second from the light Modbus
farm (bench/modbus_farm.py), alternately

- with all outputs off, and
- with all outputs on: HTTP server (scraped once a second on /metrics and /api/telemetry, as
  Prometheus and an open dashboard would), MQTT to a mosquitto that is SIGSTOPped once the
  collector has connected (a broker that stalls), a webhook to a listener that accepts and
  never answers (a dead webhook), the JSONL file output, and alert rules.

Poll lateness (read start after its scheduled instant, from the polls table) is compared over
a window inside one minute, clear of the collector's minute seal: p50/p99/max per run,
medians over --repeats, the two modes alternating so drift in the machine's load hits both.
Then, with outputs on, a second process puts a bounded closed-loop load (C keep-alive
connections) on /api/telemetry — served from a body cached per tick — and on
/api/telemetry/<device>, built per request (the naive way), and the request rates are
reported together with the lateness during that load.

    .venv/bin/python bench/bench_live.py [--devices 50] [--seconds 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

from bench_collector import analyse, start_farm, wait_up  # noqa: E402

LOAD_CLIENT = r"""
import asyncio, json, sys, time

async def client(port, path, until, counts):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    while time.monotonic() < until:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        counts[0] += 1
    writer.close()

async def main(port, path, conns, seconds):
    counts = [0]
    start = time.monotonic()
    await asyncio.gather(*(client(port, path, start + seconds, counts) for _ in range(conns)))
    print(json.dumps({"requests": counts[0], "seconds": time.monotonic() - start}))

asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


SEAL_CLEAR = 8.0  # seconds after a minute starts before a window may begin
MAX_WINDOW = 60 - SEAL_CLEAR - 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BlackHole:
    """Accepts TCP connections and never reads or answers: a dead webhook."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class Broker:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)

    def stall(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait(5)


def lux_profile(folder: Path) -> Path:
    """A Modbus profile of 1,800 registers: a Luxtronik-sized sample from the farm."""
    path = folder / "lux_sized.yaml"
    points = [
        {"name": f"v{i:04d}", "address": i, "data_type": "int16", "scale": 0.1} for i in range(1800)
    ]
    path.write_text(yaml.safe_dump({"manufacturer": "bench", "model": "1800", "points": points}))
    return path


def write_config(folder: Path, base: int, count: int, outputs: dict | None) -> Path:
    device = {"driver": "modbus", "interval": 1}
    conn = {"transport": "tcp", "host": "127.0.0.1", "unit_id": 1, "timeout": 1.0, "retries": 0}
    devices = [
        {
            **device,
            "id": f"dev{i:04d}",
            "profile": "janitza_umg509pro",
            "connection": {**conn, "port": base + i},
        }
        for i in range(count)
    ]
    devices.append(
        {
            **device,
            "id": "lux1800",
            "profile": str(lux_profile(folder)),
            "connection": {**conn, "port": base + count},
        }
    )
    cfg: dict = {
        "storage": {"data_dir": str(folder / "data")},
        "collector": {"seal_delay": 2},
        "devices": devices,
    }
    if outputs is not None:
        cfg["outputs"] = outputs
    if outputs is not None and "http" in outputs:
        cfg["alerts"] = {
            "rules": [
                {"device": "*", "metric": "frequency", "op": ">", "threshold": 0},
                {"device": "*", "kind": "stale", "after": 30},
                {"device": "*", "kind": "device_down", "failures": 3},
            ]
        }
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def scrape(port: int, stop: threading.Event) -> None:
    """Prometheus and one open dashboard: /metrics and /api/telemetry once a second."""
    while not stop.wait(1.0):
        for path in ("/metrics", "/api/telemetry"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    r.read()
            except OSError:
                pass


def aligned_window(seconds: float) -> tuple[float, float]:
    """A window of whole seconds inside one minute, clear of the minute's seal (the collector
    seals the previous minute a couple of seconds after it ends), so both modes measure
    polling, not the seal landing in one window and not the other."""
    now = time.time()
    minute = now // 60 * 60
    t0 = max(minute + SEAL_CLEAR, float(int(now) + 1))
    if t0 + seconds > minute + 60 - 2:
        t0 = minute + 60 + SEAL_CLEAR
    time.sleep(max(0.0, t0 - time.time()) + seconds)
    return t0, t0 + int(seconds)


def load(port: int, path: str, conns: int, seconds: float) -> float:
    out = subprocess.run(
        [sys.executable, "-c", LOAD_CLIENT, str(port), path, str(conns), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    )
    doc = json.loads(out.stdout)
    return doc["requests"] / doc["seconds"]


def lateness_ms(data_dir: Path, t0: float, t1: float) -> np.ndarray:
    """Every poll's lateness in the window (read start after its scheduled instant)."""
    lo = datetime.fromtimestamp(t0, UTC).isoformat()
    hi = datetime.fromtimestamp(t1, UTC).isoformat()
    return (
        duckdb.connect()
        .sql(
            "select (epoch_us(started_at) - epoch_us(ts)) / 1000.0 as ms from "
            f"read_parquet('{data_dir}/polls/**/*.parquet') "
            f"where ts >= '{lo}'::timestamptz and ts < '{hi}'::timestamptz"
        )
        .fetchnumpy()["ms"]
    )


def run_once(
    count: int, seconds: float, mode: str, conns: int
) -> tuple[dict[str, float], np.ndarray]:
    """One collector run: outputs `off`, `all` of them, or only `influxdb` (a real influxd)."""
    outputs_on = mode == "all"
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        folder = Path(tmp)
        farm, base = start_farm(count + 1, 0.0)
        broker = Broker(folder) if outputs_on else None
        hole = BlackHole() if outputs_on else None
        influxd = start_influxd(folder) if mode == "influxdb" else None
        http = free_port()
        outputs = None
        if influxd is not None:
            outputs = {"influxdb": {"url": influxd.url, "database": "bench"}}
        if outputs_on:
            assert broker is not None and hole is not None
            outputs = {
                "http": {"port": http},
                "mqtt": {"host": "127.0.0.1", "port": broker.port, "queue_size": 1000},
                "webhook": {
                    "url": f"http://127.0.0.1:{hole.port}/hook",
                    "timeout": 2,
                    "queue_size": 1000,
                },
                "file": {"path": str(folder / "live"), "format": "jsonl"},
            }
        cfg = write_config(folder, base, count, outputs)
        collector = None
        stop = threading.Event()
        figures: dict[str, float] = {}
        try:
            collector = subprocess.Popen(
                [sys.executable, "-m", "energy_pipeline", "collect", "--config", str(cfg)],
                env=ENV,
                stderr=subprocess.DEVNULL,
            )
            wait_up(folder / "data", count + 1, 60)
            time.sleep(2.0)
            if outputs_on:
                assert broker is not None
                broker.stall()
                threading.Thread(target=scrape, args=(http, stop), daemon=True).start()
            t0, t1 = aligned_window(seconds)
            stop.set()
            if outputs_on:
                start = time.time()
                figures["cached_rps"] = load(http, "/api/telemetry", conns, 5.0)
                figures["per_request_rps"] = load(http, "/api/telemetry/dev0000", conns, 5.0)
                l0, l1 = float(int(start) + 1), float(int(time.time()))
            collector.send_signal(signal.SIGTERM)
            collector.wait(60)
        finally:
            if collector and collector.poll() is None:
                collector.kill()
            farm.terminate()
            farm.wait(10)
            if broker:
                broker.close()
            if hole:
                hole.close()
            if influxd is not None:
                try:
                    figures.update(influx_delivered(influxd, folder / "data", t0, t1))
                finally:
                    influxd.stop()
        late = analyse(folder / "data", count + 1, t0, t1)
        figures.update({k: late[k] for k in ("p50_ms", "p99_ms", "max_ms", "missed")})
        if outputs_on:
            under = analyse(folder / "data", count + 1, l0, l1)
            figures["load_p99_ms"] = under["p99_ms"]
            figures["load_missed"] = under["missed"]
            lines = sum(1 for f in (folder / "live").glob("*.jsonl") for _ in f.open())
            figures["file_lines"] = lines
        return figures, lateness_ms(folder / "data", t0, t1)


def start_influxd(folder: Path):
    """A real InfluxDB 1.x (Debian's influxd) with its own folders, on free loopback ports."""
    from energy_pipeline_tests.influx_support import Influxd

    server = Influxd("influxd", folder)
    server.start()
    server.query("CREATE DATABASE bench")
    return server


def influx_delivered(influxd, data_dir: Path, t0: float, t1: float) -> dict[str, float]:
    """Points InfluxDB holds for the window's instants against the lake's successful polls."""
    lo, hi = int(t0 * 1e9), int(t1 * 1e9)
    points = 0
    for field in ("frequency", "v0000"):  # every Janitza point has one, the 1,800-value one
        for series in influxd.query(
            f'SELECT count("{field}") FROM energy WHERE time >= {lo} AND time < {hi}', "bench"
        ):
            points += series["values"][0][1]
    polls = f"read_parquet('{data_dir}/polls/**/*.parquet')"
    lo_iso = datetime.fromtimestamp(t0, UTC).isoformat()
    hi_iso = datetime.fromtimestamp(t1, UTC).isoformat()
    ok = duckdb.sql(
        f"select count(*) from {polls} where ok and ts >= '{lo_iso}'::timestamptz "
        f"and ts < '{hi_iso}'::timestamptz"
    ).fetchall()[0][0]
    return {"influx_points_per_s": points / (t1 - t0), "influx_missing": float(ok - points)}


def naive_lines(outcomes, series: dict[str, str], states: frozenset[str]) -> bytes:
    """The naive encoder: one f-string per value."""
    from energy_pipeline.live.lineprotocol import epoch_us, escape_key

    lines = []
    for o in outcomes:
        fields = ",".join(
            f"{escape_key(n)}={int(v)}i" if n in states else f"{escape_key(n)}={v!r}"
            for n, v in zip(o.sample.names, o.sample.values.tolist(), strict=True)
            if v == v and abs(v) != float("inf")
        )
        if fields:
            lines.append(f"{series[o.device_id]} {fields} {epoch_us(o.ts) // 1000}\n")
    return "".join(lines).encode()


def influx_tick(count: int):
    """One tick's outcomes: N Janitza-sized samples (61 values) and one of 1,800 values."""
    from energy_pipeline.readings import PollOutcome, Sample

    ts = datetime.now(UTC).replace(microsecond=0)
    small = (*(f"m{i}" for i in range(60)), "mode")
    large = tuple(f"v{i:04d}" for i in range(1800))
    rng = np.random.default_rng(1)
    out = []
    for i in range(count):
        values = rng.normal(230, 5, 61)
        values[-1] = 2.0
        out.append(PollOutcome(f"dev{i:04d}", ts, ts, ts, 1, Sample(small, values)))
    out.append(PollOutcome("lux1800", ts, ts, ts, 1, Sample(large, rng.normal(30, 9, 1800))))
    return out


def encoder_comparison(count: int, repeats: int = 15) -> dict[str, float]:
    """Encoding one tick (N + 1 points) with the vectorised encoder and the naive one."""
    from energy_pipeline.live.lineprotocol import PointEncoder

    outcomes = influx_tick(count)
    states = frozenset({"mode"})
    encoder = PointEncoder(
        "energy", "ms", {}, {o.device_id: states for o in outcomes}, {"site": "bench"}
    )
    series = {o.device_id: encoder.series(o.device_id) for o in outcomes}
    encoder.outcomes(outcomes)  # templates built once per device, as in a running collector
    fast, slow = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        body = encoder.outcomes(outcomes)
        fast.append(time.perf_counter() - start)
        start = time.perf_counter()
        naive = naive_lines(outcomes, series, states)
        slow.append(time.perf_counter() - start)
    assert body.count(b"\n") == naive.count(b"\n") == len(outcomes)
    values = sum(len(o.sample.names) for o in outcomes)
    return {
        "points": len(outcomes),
        "values": values,
        "fast_ms": statistics.median(fast) * 1000,
        "naive_ms": statistics.median(slow) * 1000,
        "bytes": len(body),
    }


def output_throughput(count: int, ticks: int = 100) -> dict[str, float]:
    """The whole output in-process (queue, encode, gzip, POST to a real influxd): `ticks`
    ticks of N + 1 points offered at once, timed until InfluxDB acknowledged them all. The
    batches are full (`batch_max_points`), so the figure is the output's, not its timer's."""
    import asyncio
    from datetime import timedelta

    from energy_pipeline.catalog import build_catalog
    from energy_pipeline.config import load_config
    from energy_pipeline.live.influxdb import InfluxSink, point_encoder
    from energy_pipeline.readings import PollOutcome

    with tempfile.TemporaryDirectory(prefix="bench-influx-") as tmp:
        folder = Path(tmp)
        influxd = start_influxd(folder)
        target = {
            "url": influxd.url,
            "database": "bench",
            "batch_seconds": 0.05,
            "queue_max_points": ticks * (count + 1),
        }
        cfg = write_config(folder, 20000, count, {"influxdb": target})
        config = load_config(cfg)
        out = config.outputs.influxdb
        assert out is not None
        sink = InfluxSink(out, point_encoder(config, out, build_catalog(config).devices))
        base = influx_tick(count)
        batches = [
            [
                PollOutcome(o.device_id, o.ts + timedelta(seconds=k), o.ts, o.ts, 1, o.sample)
                for o in base
            ]
            for k in range(ticks)
        ]
        total = ticks * len(base)

        async def main() -> float:
            await sink.start()
            start = time.perf_counter()
            for batch in batches:
                sink.offer(batch)
                await asyncio.sleep(0)
            while sink.written < total:
                if time.perf_counter() - start > 300:
                    raise TimeoutError(f"only {sink.written} of {total} points written")
                await asyncio.sleep(0.01)
            took = time.perf_counter() - start
            await sink.stop()
            return took

        took = asyncio.run(main())
        influxd.stop()
    values = ticks * sum(len(o.sample.names) for o in base)
    return {"points_per_s": total / took, "values_per_s": values / took, "seconds": took}


class Accepting:
    """Answers every POST with 204 at once: an InfluxDB that costs nothing."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def influx_loop_lag(count: int, seconds: float = 20.0, rate: float = 4.0) -> dict[str, float]:
    """What the output's own thread costs the event loop the polls run on: 1 ms sleeps probe
    the loop while ticks of N + 1 points arrive `rate` times a second (batches fill up), the
    output off and on, posting to a server that answers at once (influxd's own CPU apart)."""
    import asyncio
    from datetime import timedelta

    from energy_pipeline.catalog import build_catalog
    from energy_pipeline.config import load_config
    from energy_pipeline.live.influxdb import InfluxSink, point_encoder
    from energy_pipeline.readings import PollOutcome

    server = Accepting()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-influx-lag-") as tmp:
        target = {"url": f"http://127.0.0.1:{server.port}", "database": "bench"}
        config = load_config(write_config(Path(tmp), 20000, count, {"influxdb": target}))
        out = config.outputs.influxdb
        assert out is not None
        base = influx_tick(count)

        async def probe(sink: InfluxSink | None) -> list[float]:
            if sink is not None:
                await sink.start()
            loop = asyncio.get_running_loop()
            lags: list[float] = []
            end, due, k = loop.time() + seconds, loop.time(), 0
            while loop.time() < end:
                if sink is not None and loop.time() >= due:
                    k += 1
                    due += 1 / rate
                    step = timedelta(seconds=k)
                    sink.offer(
                        [
                            PollOutcome(o.device_id, o.ts + step, o.ts, o.ts, 1, o.sample)
                            for o in base
                        ]
                    )
                t = loop.time()
                await asyncio.sleep(0.001)
                lags.append((loop.time() - t - 0.001) * 1000)
            if sink is not None:
                await sink.stop()
            return lags

        for label, sink in (
            ("off", None),
            ("on", InfluxSink(out, point_encoder(config, out, build_catalog(config).devices))),
        ):
            lags = asyncio.run(probe(sink))
            q = statistics.quantiles(lags, n=1000)
            figures[f"{label}_p99_ms"], figures[f"{label}_p999_ms"] = q[989], q[998]
            figures[f"{label}_max_ms"] = max(lags)
    server.close()
    return figures


def offer_cost(count: int, ticks: int = 300) -> dict[str, float]:
    """In-process, low-noise: what the collector's commit path pays per tick for the live
    outputs — the synchronous `offer` of every sink for one tick's outcomes (N Janitza-sized
    samples and one of 1,800 values), all outputs on, MQTT pointed at a listener that never
    answers — and the longest event-loop step the outputs' own tasks take between ticks."""
    import asyncio
    from datetime import timedelta

    from energy_pipeline.config import load_config
    from energy_pipeline.live import build_outputs
    from energy_pipeline.live.state import StandaloneState
    from energy_pipeline.readings import PollOutcome, Sample

    with tempfile.TemporaryDirectory(prefix="bench-live-offer-") as tmp:
        folder = Path(tmp)
        hole = BlackHole()
        cfg = write_config(
            folder,
            20000,
            count,
            {
                "http": {"port": 0},
                "mqtt": {"host": "127.0.0.1", "port": hole.port},
                "webhook": {"url": f"http://127.0.0.1:{hole.port}/hook", "timeout": 2},
                "file": {"path": str(folder / "live")},
            },
        )
        live = build_outputs(load_config(cfg), StandaloneState())
        small = tuple(f"m{i}" for i in range(61))
        large = tuple(f"v{i:04d}" for i in range(1800))

        def tick(ts: datetime) -> list[PollOutcome]:
            out = [
                PollOutcome(f"dev{i:04d}", ts, ts, ts, 1, Sample(small, np.random.rand(61)))
                for i in range(count)
            ]
            out.append(PollOutcome("lux1800", ts, ts, ts, 1, Sample(large, np.random.rand(1800))))
            return out

        async def main() -> tuple[list[float], list[float]]:
            for sink in live.sinks:
                await sink.start()
            loop = asyncio.get_running_loop()
            costs, lags = [], []
            ts = datetime.now(UTC).replace(microsecond=0)
            for _ in range(ticks):
                ts += timedelta(seconds=1)
                outcomes = tick(ts)
                start = time.perf_counter()
                for sink in live.sinks:
                    sink.offer(outcomes)
                costs.append((time.perf_counter() - start) * 1000)
                # The outputs' tasks run now; a 1 ms probe measures the longest step they take.
                worst = 0.0
                for _ in range(20):
                    t = loop.time()
                    await asyncio.sleep(0.001)
                    worst = max(worst, (loop.time() - t - 0.001) * 1000)
                lags.append(worst)
            for sink in reversed(live.sinks):
                await sink.stop()
            return costs, lags

        costs, lags = asyncio.run(main())
        hole.close()
    q = statistics.quantiles
    return {
        "offer_p50_ms": statistics.median(costs),
        "offer_p99_ms": q(costs, n=100)[98],
        "offer_max_ms": max(costs),
        "step_p50_ms": statistics.median(lags),
        "step_p99_ms": q(lags, n=100)[98],
    }


# ---- dashboard: bytes per refresh, /api/history latency, lateness with the dashboard open ----

V1_REFRESH = ("/api/health", "/api/devices", "/api/telemetry", "/api/alerts", "/api/history")
DEVICES_EVERY = 6  # the v2 page re-reads /api/devices every 30 s, i.e. every 6th refresh


async def http_bytes(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    """One request; (bytes on the wire, response headers, body)."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n{extra}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    fields = dict(
        line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line
    )
    body = await reader.readexactly(int(fields.get("Content-Length", "0")))
    writer.close()
    return len(head) + len(body), {k.lower(): v for k, v in fields.items()}, body


def dashboard_bytes(count: int, refreshes: int = 20) -> dict[str, float]:
    """In-process: the old page's refresh (five documents, whole, uncompressed) against the
    new one's (health, changed card values since the last refresh, alerts revalidated by ETag,
    all gzip; the device list every sixth refresh), one collector tick between refreshes, every
    value of every device changing each tick (the worst case)."""
    import asyncio
    import gzip as gz
    from datetime import timedelta

    from energy_pipeline.config import load_config
    from energy_pipeline.live import build_outputs
    from energy_pipeline.live.state import StandaloneState
    from energy_pipeline.readings import PollOutcome, Sample

    with tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        folder = Path(tmp)
        cfg = write_config(folder, 20000, count, {"http": {"port": 0}})
        live = build_outputs(load_config(cfg), StandaloneState())
        metas = live.store.meta

        def tick(ts: datetime) -> list[PollOutcome]:
            out = []
            for device, meta in metas.items():
                names = tuple(meta.metrics)
                sample = Sample(names, np.random.rand(len(names)) * 1000)
                out.append(PollOutcome(device, ts, ts, ts, 1, sample))
            return out

        async def main() -> tuple[list[int], list[int]]:
            for sink in live.sinks:
                await sink.start()
            assert live.http is not None and live.http.port
            port = live.http.port
            ts = datetime.now(UTC).replace(microsecond=0)
            old, new = [], []
            seq, etags = 0, {}
            for i in range(refreshes + 1):
                ts += timedelta(seconds=5)
                for sink in live.sinks:
                    sink.offer(tick(ts))
                total = 0
                for path in V1_REFRESH:
                    total += (await http_bytes(port, path, {}))[0]
                paths = ["/api/health", f"/api/telemetry?view=cards&since={seq}", "/api/alerts"]
                if i % DEVICES_EVERY == 0:
                    paths.append("/api/devices")
                total_new = 0
                for path in paths:
                    headers = {"Accept-Encoding": "gzip"}
                    if path in etags:
                        headers["If-None-Match"] = etags[path]
                    size, fields, body = await http_bytes(port, path, headers)
                    total_new += size
                    if "etag" in fields:
                        etags[path] = fields["etag"]
                    if path.startswith("/api/telemetry") and body:
                        seq = json.loads(gz.decompress(body))["seq"]
                if i:  # the first refresh of the new page loads everything once
                    old.append(total)
                    new.append(total_new)
            for sink in reversed(live.sinks):
                await sink.stop()
            return old, new

        old, new = asyncio.run(main())
    return {"v1_bytes": statistics.median(old), "v2_bytes": statistics.median(new)}


def janitza_month_lake(data_dir: Path, device: str, days: int = 30, daily: bool = False) -> None:
    """A month of minute rows of one Janitza (every profile metric, every minute) written by
    the lake's own table writers: hourly minute tables, and with `daily` the daily table."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    import pyarrow as pa

    from energy_pipeline.lake.layout import DAILY_READINGS, MINUTE_READINGS
    from energy_pipeline.lake.tables import write_hourly, write_partition
    from energy_pipeline.profiles import load_profile
    from energy_pipeline.transforms.daily import daily_readings
    from energy_pipeline.transforms.schemas import DAILY_READINGS_SCHEMA, MINUTE_SCHEMA

    names = [p.name for p in load_profile("janitza_umg509pro", REPO).points]
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days - 1)
    rng = np.random.default_rng(1)
    for day in range(days):
        d0 = start + timedelta(days=day)
        minutes = np.arange(1440, dtype="int64") * 60_000_000 + int(d0.timestamp() * 1e6)
        ts = np.repeat(minutes, len(names))
        n = ts.size
        value = rng.random(n) * 1000
        table = pa.table(
            {
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "device_id": pa.array([device] * n),
                "metric": pa.array(names * 1440),
                "avg": value,
                "min": value - 1,
                "max": value + 1,
                "last": value,
                "count": pa.array(np.full(n, 1, dtype="int32")),
                "delta": pa.array([None] * n, pa.float64()),
                "resets": pa.array(np.zeros(n, dtype="int32")),
            }
        ).sort_by([("ts", "ascending"), ("metric", "ascending")])
        if daily:
            rows = daily_readings(table, d0.date(), ZoneInfo("UTC"))
            write_partition(data_dir, DAILY_READINGS, d0, rows, DAILY_READINGS_SCHEMA)
        else:
            write_hourly(
                data_dir, MINUTE_READINGS, table, d0, d0 + timedelta(days=1), MINUTE_SCHEMA
            )


async def timed_history(live: Any, path: str, runs: int) -> list[float]:
    for sink in live.sinks:
        await sink.start()
    assert live.http is not None and live.http.port
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        _, _, body = await http_bytes(live.http.port, path, {})
        times.append((time.perf_counter() - t) * 1000)
        assert len(json.loads(body)["t"]) > 600, body[:200]
    for sink in reversed(live.sinks):
        await sink.stop()
    return times


def history_latency(runs: int = 21) -> dict[str, float]:
    """/api/history for a month of one Janitza's minute data, over HTTP from the collector's
    own server: from hourly minute tables, from the daily table, and the naive way beside them
    (every minute row of the range from the table's glob, unbucketed, as JSON)."""
    import asyncio

    from energy_pipeline.config import load_config
    from energy_pipeline.live import build_outputs
    from energy_pipeline.live.state import StandaloneState

    figures: dict[str, float] = {}
    for label, daily in (("minute", False), ("daily", True)):
        with tempfile.TemporaryDirectory(prefix="bench-hist-") as tmp:
            folder = Path(tmp)
            cfg = write_config(folder, 20000, 1, {"http": {"port": 0}})
            config = load_config(cfg)
            janitza_month_lake(config.data_dir, "dev0000", daily=daily)
            live = build_outputs(config, StandaloneState())
            path = "/api/history?device=dev0000&metric=power_active_total&from=-30d&step=auto"

            times = asyncio.run(timed_history(live, path, runs))
            figures[f"{label}_first_ms"] = times[0]
            figures[f"{label}_ms"] = statistics.median(times[1:])
            if not daily:
                naive = []
                glob = f"{config.data_dir}/minute_readings/**/*.parquet"
                for _ in range(5):
                    t = time.perf_counter()
                    rows = (
                        duckdb.connect()
                        .sql(
                            f"select epoch(ts), avg from read_parquet('{glob}') where "
                            "device_id = 'dev0000' and metric = 'power_active_total' order by ts"
                        )
                        .fetchall()
                    )
                    json.dumps(rows)
                    naive.append((time.perf_counter() - t) * 1000)
                figures["naive_ms"] = statistics.median(naive)
    return figures


def dashboard_client(port: int, stop: threading.Event) -> None:
    """An open v2 dashboard on a device page: every 5 s health, changed card values and alerts;
    every refresh also a day and a month of history (as if someone kept switching ranges)."""
    seq = 0
    month = "/api/history?device=dev0000&metric=power_active_total&from=-30d"
    day = "/api/history?device=dev0000&metric=power_active_total&from=-24h"
    while not stop.wait(5.0):
        for path in (
            "/api/health",
            f"/api/telemetry?view=cards&since={seq}",
            "/api/alerts",
            day,
            month,
        ):
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
                with urllib.request.urlopen(req, timeout=10) as r:
                    body = r.read()
                if path.startswith("/api/telemetry"):
                    seq = json.loads(body)["seq"]
            except OSError:
                pass


def lateness_dashboard(count: int, seconds: float, open_: bool) -> dict[str, float]:
    """The real collector with only the HTTP output, a month of minute history in its lake;
    poll lateness with a v2 dashboard open (dashboard_client) or closed."""
    with tempfile.TemporaryDirectory(prefix="bench-live-dash-") as tmp:
        folder = Path(tmp)
        farm, base = start_farm(count + 1, 0.0)
        http = free_port()
        cfg = write_config(folder, base, count, {"http": {"port": http}})
        janitza_month_lake(folder / "data", "dev0000")
        collector = None
        stop = threading.Event()
        try:
            collector = subprocess.Popen(
                [sys.executable, "-m", "energy_pipeline", "collect", "--config", str(cfg)],
                env=ENV,
                stderr=subprocess.DEVNULL,
            )
            wait_up(folder / "data", count + 1, 60)
            time.sleep(2.0)
            if open_:
                threading.Thread(target=dashboard_client, args=(http, stop), daemon=True).start()
            t0, t1 = aligned_window(seconds)
            stop.set()
            collector.send_signal(signal.SIGTERM)
            collector.wait(60)
        finally:
            if collector and collector.poll() is None:
                collector.kill()
            farm.terminate()
            farm.wait(10)
        late = analyse(folder / "data", count + 1, t0, t1)
        return {k: late[k] for k in ("p50_ms", "p99_ms", "max_ms", "missed")}


def dashboard_report(count: int, seconds: float, repeats: int) -> None:
    size = dashboard_bytes(count)
    print(
        f"# dashboard bytes per refresh, {count} Janitza + 1 Luxtronik-sized device, every "
        f"value changing: v1 {size['v1_bytes']:.0f} B (5 whole documents), v2 "
        f"{size['v2_bytes']:.0f} B (gzip, ETag, changed card values) "
        f"({size['v1_bytes'] / size['v2_bytes']:.0f}x less); medians of 20 refreshes"
    )
    hist = history_latency()
    print(
        "# /api/history, a month of one Janitza's minute data, step auto (1 h): "
        f"from minute tables median {hist['minute_ms']:.1f} ms (first {hist['minute_first_ms']:.0f}"
        f" ms, DuckDB import included), from the daily table {hist['daily_ms']:.1f} ms (first "
        f"{hist['daily_first_ms']:.0f} ms); naive (glob, every minute row as JSON) "
        f"{hist['naive_ms']:.1f} ms; target 200 ms"
    )
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for i in range(repeats):
        for open_ in (False, True) if i % 2 == 0 else (True, False):
            result = lateness_dashboard(count, seconds, open_)
            runs[open_].append(result)
            print(
                f"#   run {i + 1} dashboard {'open  ' if open_ else 'closed'}: "
                + " ".join(f"{k}={v:.1f}" for k, v in result.items()),
                flush=True,
            )
    for open_ in (False, True):
        med = {k: statistics.median(r[k] for r in runs[open_]) for k in runs[open_][0]}
        print(
            f"# dashboard {'open  ' if open_ else 'closed'}: p50 {med['p50_ms']:.2f} ms, "
            f"p99 {med['p99_ms']:.2f} ms, max {med['max_ms']:.1f} ms, missed {med['missed']:.0f}"
            f" (median of {repeats})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30, help=f"at most {MAX_WINDOW:g}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--dashboard-only", action="store_true", help="only the dashboard part")
    parser.add_argument(
        "--influx-devices", type=int, default=500, help="devices of the InfluxDB comparison"
    )
    parser.add_argument("--influx-repeats", type=int, default=3)
    parser.add_argument(
        "--only-influxdb", action="store_true", help="only the InfluxDB output's figures"
    )
    args = parser.parse_args()
    args.seconds = min(args.seconds, MAX_WINDOW)
    if args.dashboard_only:
        dashboard_report(args.devices, args.seconds, args.repeats)
        return
    print(f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    if not args.only_influxdb:
        print(
            f"# all outputs: {args.devices} Janitza + 1 Luxtronik-sized device at 1 s; "
            f"{args.seconds:g} s windows, median of {args.repeats}"
        )
        all_outputs(args)
    print(
        f"# InfluxDB output: {args.influx_devices} Janitza + 1 Luxtronik-sized device at 1 s; "
        f"{args.seconds:g} s windows, median of {args.influx_repeats}"
    )
    influx_section(args)
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


def influx_section(args: argparse.Namespace) -> None:
    """The InfluxDB output: its encoder beside the naive one, what the whole output sustains,
    and poll lateness of the real collector with it on against off, alternating."""
    n = args.influx_devices
    enc = encoder_comparison(n)
    print(
        f"# line protocol, one tick of {enc['points']:.0f} points ({enc['values']:.0f} values, "
        f"{enc['bytes'] / 1e6:.1f} MB): vectorised {enc['fast_ms']:.1f} ms "
        f"({enc['values'] / enc['fast_ms'] / 1000:.2f} M values/s), naive per-value f-string "
        f"{enc['naive_ms']:.1f} ms ({enc['naive_ms'] / enc['fast_ms']:.1f}x slower); median of 15"
    )
    thr = output_throughput(n)
    print(
        f"# InfluxDB output in-process to a real influxd (queue, encode, gzip, POST): "
        f"{thr['points_per_s']:.0f} points/s, {thr['values_per_s'] / 1e6:.2f} M values/s sustained "
        f"({n} Janitza + 1 Luxtronik-sized per tick)"
    )
    lag = influx_loop_lag(n)
    print(
        f"# event-loop steps while the output takes {4 * (n + 1)} points/s (4x the site's rate), "
        f"off → on: p99 {lag['off_p99_ms']:.1f} → {lag['on_p99_ms']:.1f} ms, p99.9 "
        f"{lag['off_p999_ms']:.1f} → {lag['on_p999_ms']:.1f} ms, max {lag['off_max_ms']:.0f} → "
        f"{lag['on_max_ms']:.0f} ms"
    )
    runs: dict[str, list[dict[str, float]]] = {"off": [], "influxdb": []}
    for i in range(args.influx_repeats):
        order = ("off", "influxdb") if i % 2 == 0 else ("influxdb", "off")
        for mode in order:
            result, _ = run_once(n, args.seconds, mode, args.connections)
            runs[mode].append(result)
            print(
                f"#   run {i + 1} influxdb {'on ' if mode != 'off' else 'off'}: "
                + " ".join(f"{k}={v:.1f}" for k, v in result.items()),
                flush=True,
            )

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    print(f"{'influxdb':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'missed':>6}")
    for label, mode in (("off", "off"), ("on", "influxdb")):
        print(
            f"{label:>8} {med(mode, 'p50_ms'):7.2f} {med(mode, 'p99_ms'):7.2f} "
            f"{med(mode, 'max_ms'):7.1f} {med(mode, 'missed'):6.0f}"
        )
    print(
        f"# {n} + 1 devices at 1 s, InfluxDB output on: "
        f"{med('influxdb', 'influx_points_per_s'):.0f} points/s delivered, "
        f"{med('influxdb', 'influx_missing'):.0f} successful polls of the window missing in "
        "InfluxDB; p99 lateness moved by "
        f"{med('influxdb', 'p99_ms') - med('off', 'p99_ms'):+.2f} ms"
    )


def all_outputs(args: argparse.Namespace) -> None:
    off: list[dict[str, float]] = []
    on: list[dict[str, float]] = []
    pooled: dict[bool, list[np.ndarray]] = {False: [], True: []}
    for i in range(args.repeats):
        order = (False, True) if i % 2 == 0 else (True, False)
        for mode in order:
            result, late = run_once(
                args.devices, args.seconds, "all" if mode else "off", args.connections
            )
            (on if mode else off).append(result)
            pooled[mode].append(late)
            print(
                f"#   run {i + 1} outputs {'on ' if mode else 'off'}: "
                + " ".join(f"{k}={v:.1f}" for k, v in result.items()),
                flush=True,
            )

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"{'outputs':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'missed':>6}")
    for label, runs in (("off", off), ("on", on)):
        print(
            f"{label:>8} {med(runs, 'p50_ms'):7.2f} {med(runs, 'p99_ms'):7.2f} "
            f"{med(runs, 'max_ms'):7.1f} {med(runs, 'missed'):6.0f}"
        )
    print("# all runs' polls pooled per mode:")
    for label, mode in (("off", False), ("on", True)):
        ms = np.concatenate(pooled[mode])
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        print(f"{label:>8} p50 {p50:6.2f}  p90 {p90:6.2f}  p99 {p99:6.2f} ms  ({ms.size} polls)")
    delta = med(on, "p99_ms") - med(off, "p99_ms")
    verdict = "within" if delta <= 5.0 else "MISSES"
    print(
        f"# p99 lateness moved by {delta:+.2f} ms with all outputs on ({verdict} the 5 ms target)"
    )
    cached, naive = med(on, "cached_rps"), med(on, "per_request_rps")
    print(
        f"# /api/telemetry ({args.devices + 1} devices, cached per tick): {cached:.0f} req/s; "
        f"/api/telemetry/<device> built per request: {naive:.0f} req/s "
        f"({cached / naive:.1f}x); {args.connections} keep-alive connections"
    )
    print(
        f"# during that load: p99 lateness {med(on, 'load_p99_ms'):.2f} ms, "
        f"missed {med(on, 'load_missed'):.0f}"
    )
    cost = offer_cost(args.devices)
    print(
        f"# in-process, {args.devices + 1} devices, all outputs on: offer() per tick "
        f"p50 {cost['offer_p50_ms']:.3f} ms, p99 {cost['offer_p99_ms']:.3f} ms, "
        f"max {cost['offer_max_ms']:.3f} ms; longest step of the outputs' tasks after a tick "
        f"p50 {cost['step_p50_ms']:.2f} ms, p99 {cost['step_p99_ms']:.2f} ms"
    )
    dashboard_report(args.devices, args.seconds, args.repeats)
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
