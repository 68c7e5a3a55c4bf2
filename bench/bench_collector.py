"""Collector load benchmark: N simulated Janitza devices polled every second.

For each N it starts the light Modbus farm (bench/modbus_farm.py: one process, one port per
device, real sockets) and the real collector (`python -m energy_pipeline collect`) as separate
processes, lets it warm up, then measures a window of whole seconds:

- lateness of each read's start after its scheduled instant (p50/p99/max, from the polls table),
- missed ticks (scheduled (device, second) pairs in the window with no poll row),
- durable readings per second (raw rows landed in the lake for the window),
- CPU % and peak RSS (VmHWM) of the collector, summed over its processes (the parent and its
  workers); CPU % of the farm for context.

Each size runs once per `--workers` value: `1` is one process on one event loop (the naive way
for a big site), `auto` one worker per core from 200 devices; the column shows the setting and
the processes it ran.

The naive way, in the same run against the same farm: the same drivers polled one after another
(a sequential poller's cycle time vs the collector's tick spread), and building the tick's rows
one reading at a time in Python vs the vectorised encoder. Figures are medians over --repeats.
One Luxtronik heat pump (about 1,760 valid values per poll: commands 3003/3004/3005) is run
the same way against the real Luxtronik simulator (`energy-pipeline simulate`).

    .venv/bin/python bench/bench_collector.py [--sizes 10 100 500 1000] [--seconds 20]
        [--workers 1 auto]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import psutil
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def start_farm(count: int, reply_ms: float) -> tuple[subprocess.Popen, int]:
    """The farm on `count` consecutive free ports (retried elsewhere if one is taken)."""
    rng = random.Random()
    for _ in range(20):
        base = rng.randrange(20000, 60000 - count)
        farm = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "bench" / "modbus_farm.py"),
                "--base-port",
                str(base),
                "--count",
                str(count),
                "--reply-ms",
                str(reply_ms),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=ENV,
        )
        assert farm.stdout is not None
        if farm.stdout.readline().strip() == "ready":
            return farm, base
        farm.wait(10)
    raise RuntimeError("no free port range for the farm")


def start_luxtronik(folder: Path) -> tuple[subprocess.Popen, Path]:
    """The real Luxtronik simulator (`energy-pipeline simulate`) for one heat pump."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = folder / "site.yaml"
    device = {"id": "lux1", "driver": "luxtronik", "interval": 1}
    device["connection"] = {"host": "127.0.0.1", "port": port}
    doc = {"storage": {"data_dir": str(folder / "data")}, "devices": [device]}
    cfg.write_text(yaml.safe_dump(doc))
    sim = subprocess.Popen(
        [sys.executable, "-m", "energy_pipeline", "simulate", "--config", str(cfg), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    assert sim.stdout is not None and sim.stdout.readline()
    return sim, cfg


def write_config(folder: Path, base: int, count: int, workers: str = "auto") -> Path:
    devices = [
        {
            "id": f"dev{i:04d}",
            "driver": "modbus",
            "profile": "janitza_umg509pro",
            "interval": 1,
            "connection": {
                "transport": "tcp",
                "host": "127.0.0.1",
                "port": base + i,
                "unit_id": 1,
                "timeout": 1.0,
                "retries": 0,
            },
        }
        for i in range(count)
    ]
    cfg = {
        "storage": {"data_dir": str(folder / "data")},
        "collector": {"seal_delay": 2, "workers": workers if workers == "auto" else int(workers)},
        "devices": devices,
    }
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def peak_rss_mb(procs: list[psutil.Process]) -> float:
    """VmHWM summed over the collector's long-running processes (parent and workers; not the
    seal processes, which live about a second a minute: bench_peers samples those)."""
    total = 0.0
    for proc in procs:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def collect_workers(parent: psutil.Process) -> list[psutil.Process]:
    """The parent's `collect` workers; a seal process may end while they are listed."""
    workers = []
    for child in parent.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if "collect" in child.cmdline():
                workers.append(child)
    return workers


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """Their CPU and that of the children they waited for (the seal processes)."""
    return sum(
        t.user + t.system + t.children_user + t.children_system
        for t in (p.cpu_times() for p in procs)
    )


def wait_up(data_dir: Path, count: int, limit: float) -> None:
    """Until every device is up in the status files of `main` or its workers."""
    from energy_pipeline.lake.status import read_statuses

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        devs: dict[str, dict] = {}
        for doc in read_statuses(data_dir):
            devs.update(doc.get("devices") or {})
        if len(devs) == count and all(d["state"] == "up" for d in devs.values()):
            return
        time.sleep(0.5)
    raise RuntimeError(f"devices not all up after {limit} s")


def run_once(
    count: int, seconds: float, reply_ms: float, lux: bool = False, workers: str = "auto"
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        folder = Path(tmp)
        if lux:
            farm, cfg = start_luxtronik(folder)
        else:
            farm, base = start_farm(count, reply_ms)
            cfg = write_config(folder, base, count, workers)
        collector = None
        try:
            collector = subprocess.Popen(
                [sys.executable, "-m", "energy_pipeline", "collect", "--config", str(cfg)],
                env=ENV,
                stderr=subprocess.DEVNULL,
            )
            wait_up(folder / "data", count, 60)
            time.sleep(2.0)
            parent, farm_proc = psutil.Process(collector.pid), psutil.Process(farm.pid)
            procs = [parent, *collect_workers(parent)]
            t0 = float(int(time.time()) + 1)
            time.sleep(max(0.0, t0 - time.time()))
            c0, f0, w0 = cpu_seconds(procs), farm_proc.cpu_times(), time.monotonic()
            time.sleep(seconds)
            c1, f1, w1 = cpu_seconds(procs), farm_proc.cpu_times(), time.monotonic()
            t1 = t0 + int(seconds)
            rss = peak_rss_mb(procs)
            collector.send_signal(signal.SIGTERM)
            collector.wait(60)
            naive = asyncio.run(sequential_cycle(cfg))
        finally:
            if collector and collector.poll() is None:
                collector.kill()
            farm.terminate()
            farm.wait(10)
        figures = analyse(folder / "data", count, t0, t1)
        wall = w1 - w0
        figures["cpu_pct"] = 100 * (c1 - c0) / wall
        figures["processes"] = len(procs)
        figures["farm_cpu_pct"] = 100 * (f1.user + f1.system - f0.user - f0.system) / wall
        figures["rss_mb"] = rss
        figures["naive_cycle_ms"] = naive
        return figures


def analyse(data_dir: Path, count: int, t0: float, t1: float) -> dict[str, float]:
    con = duckdb.connect()
    lo = datetime.fromtimestamp(t0, UTC).isoformat()
    hi = datetime.fromtimestamp(t1, UTC).isoformat()
    polls = f"read_parquet('{data_dir}/polls/**/*.parquet')"
    raw = f"read_parquet('{data_dir}/raw_readings/**/*.parquet')"
    where = f"ts >= '{lo}'::timestamptz and ts < '{hi}'::timestamptz"
    late = con.sql(
        f"select (epoch_us(started_at) - epoch_us(ts)) / 1000.0 as ms, ok from {polls} "
        f"where {where}"
    ).fetchnumpy()
    spread = con.sql(
        f"select max(epoch_us(finished_at) - epoch_us(ts)) / 1000.0 from {polls} "
        f"where {where} group by ts"
    ).fetchnumpy()
    rows = con.execute(f"select count(*) from {raw} where {where}").fetchall()[0][0]
    ms = late["ms"]
    expected = count * int(t1 - t0)
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "missed": float(expected - int(late["ok"].sum())),
        "readings_per_s": rows / (t1 - t0),
        "tick_spread_ms": float(np.median(next(iter(spread.values())))),
    }


async def sequential_cycle(cfg: Path) -> float:
    """The naive poller: the same drivers, one device after another; median cycle in ms."""
    from energy_pipeline.config import load_config
    from energy_pipeline.drivers.registry import build_drivers
    from energy_pipeline.lake.device_state import StateFiles

    config = load_config(cfg)
    drivers = list(build_drivers(config, state=StateFiles(config.data_dir)).values())
    cycles = []
    for _ in range(2):
        start = time.perf_counter()
        for d in drivers:
            with contextlib.suppress(Exception):
                await d.read()
        cycles.append((time.perf_counter() - start) * 1000)
    for d in drivers:
        await d.close()
    return cycles[-1]  # the second cycle: connections already open


def encode_comparison(count: int) -> tuple[float, float]:
    """ms per tick: vectorised encoder vs building one Python row per reading."""
    import pyarrow as pa

    from energy_pipeline.collector.encode import OutcomeEncoder
    from energy_pipeline.lake.schemas import RAW_SCHEMA
    from energy_pipeline.readings import PollOutcome, Sample

    names = tuple(f"metric_{i}" for i in range(61))
    now = datetime.now(UTC)
    outcomes = [
        PollOutcome(f"dev{i:04d}", now, now, now, 1, Sample(names, np.random.rand(61)))
        for i in range(count)
    ]
    enc = OutcomeEncoder()
    enc.encode(outcomes)

    def vectorised() -> None:
        enc.encode(outcomes)

    def naive() -> None:
        rows = [
            {"ts": o.ts, "device_id": o.device_id, "metric": n, "value": float(v)}
            for o in outcomes
            for n, v in zip(o.sample.names, o.sample.values, strict=True)
            if v == v
        ]
        pa.Table.from_pylist(rows, schema=RAW_SCHEMA)

    def best(fn) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    return best(vectorised), best(naive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500, 1000])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-lux", action="store_true")
    parser.add_argument(
        "--workers",
        nargs="+",
        default=["1", "auto"],
        help="collector.workers values to run each size with (1 = one process, the naive way)",
    )
    parser.add_argument(
        "--reply-ms", type=float, default=5.0, help="simulated device response time (5 ms)"
    )
    args = parser.parse_args()
    print(
        f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
        f"{args.seconds:g} s windows, median of {args.repeats}"
    )
    header = (
        f"{'devices':>8} {'workers':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'missed':>6} "
        f"{'readings/s':>10} {'CPU %':>6} {'RSS MB':>7} {'farm CPU %':>10} "
        f"{'tick spread ms':>14} {'sequential ms':>13} {'ratio':>6}"
    )
    print(header)
    runs = [(n, False, w) for n in args.sizes for w in args.workers]
    runs += [] if args.no_lux else [(1, True, "1")]
    for count, lux, workers in runs:
        results = [
            run_once(count, args.seconds, args.reply_ms, lux, workers) for _ in range(args.repeats)
        ]
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        label = "1 lux" if lux else f"{count}"
        ratio = med["naive_cycle_ms"] / max(med["tick_spread_ms"], 1e-9)
        ratio_text = "     -" if lux else f"{ratio:5.1f}x"
        print(
            f"{label:>8} {workers:>4}/{med['processes']:<2.0f} {med['p50_ms']:7.1f} "
            f"{med['p99_ms']:7.1f} {med['max_ms']:7.1f} "
            f"{med['missed']:6.0f} {med['readings_per_s']:10.0f} {med['cpu_pct']:6.1f} "
            f"{med['rss_mb']:7.1f} {med['farm_cpu_pct']:10.1f} {med['tick_spread_ms']:14.1f} "
            f"{med['naive_cycle_ms']:13.1f} {ratio_text}",
            flush=True,
        )
    print("\n# row building per tick (61 values per device): vectorised vs one Python row each")
    for count in args.sizes:
        fast, slow = encode_comparison(count)
        print(f"{count:>8} devices: {fast:8.2f} ms vs {slow:8.2f} ms  ({slow / fast:5.1f}x)")
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
