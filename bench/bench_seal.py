"""Landing a write-ahead-log backlog: batched seal jobs against one job for the whole backlog.

A backlog of --minutes minutes of --devices devices (61 values each, 1 s polls, one segment a
minute, as a collector leaves it while the lake refuses writes) is written with the collector's
own encoder, then landed by the collector's `Sealer` and the real seal process, twice in fresh
folders: with the default `SEAL_BATCH_BYTES` and with one job reading it all (the way before
batches). Prints per way: wall seconds, jobs, and the seal processes' peak RSS (the largest
child's ru_maxrss, measured in a process of its own per way).

    python bench/bench_seal.py [--devices 1000] [--minutes 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from energy_pipeline.collector.encode import OutcomeEncoder
from energy_pipeline.collector.sealer import SEAL_BATCH_BYTES, Sealer, SealProcess
from energy_pipeline.collector.wal import WriteAheadLog, encode_frame
from energy_pipeline.readings import PollOutcome, Sample

METRICS = tuple(f"m{i:02d}" for i in range(61))
T0 = 1_763_870_400.0  # a minute boundary


def write_backlog(wal: WriteAheadLog, sealer: Sealer, devices: int, minutes: int) -> int:
    encoder = OutcomeEncoder()
    values = np.linspace(1.0, 61.0, len(METRICS))
    rows = 0
    for minute in range(minutes):
        for second in range(60):
            ts = T0 + minute * 60 + second
            at = datetime.fromtimestamp(ts, UTC)
            done = datetime.fromtimestamp(ts + 0.01, UTC)
            outcomes = [
                PollOutcome(f"dev{d:05d}", at, at, done, 1, Sample(METRICS, values + d))
                for d in range(devices)
            ]
            encoded = encoder.encode(outcomes)
            frame = encode_frame(encoded.payload)
            seq = wal.append(frame)
            wal_rows = encoded.raw_rows + encoded.poll_rows
            sealer.add(seq, wal_rows, encoded.first_us, int(ts * 1e6), len(frame))
            rows += encoded.raw_rows
        wal.rotate()
    return rows


def one_way(root: Path, devices: int, minutes: int, batch_bytes: int) -> dict[str, float]:
    wal = WriteAheadLog(root / "wal")
    jobs = 0

    def launch(job: dict) -> SealProcess:
        nonlocal jobs
        jobs += 1
        return SealProcess(job)

    sealer = Sealer(root / "lake", "main", wal.path, launch=launch, batch_bytes=batch_bytes)
    rows = write_backlog(wal, sealer, devices, minutes)
    wal_mb = wal.disk_bytes() / 1e6
    t = time.perf_counter()
    report = sealer.seal(int((T0 + minutes * 60) * 1e6))
    wall = time.perf_counter() - t
    wal.close()
    assert report.polls == devices * minutes * 60 and not sealer.segments
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall": wall, "jobs": jobs, "peak_mb": peak_mb, "rows": rows, "wal_mb": wal_mb}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--minutes", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # batch bytes, in a child
    args = ap.parse_args()
    if args.one is not None:
        root = Path(tempfile.mkdtemp(prefix="bench_seal_"))
        try:
            print(json.dumps(one_way(root, args.devices, args.minutes, args.one)))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return 0
    ways = {"batched (128 MB a job)": SEAL_BATCH_BYTES, "one job for all": 1 << 62}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in ways}
    for _ in range(args.repeat):
        for name, batch in ways.items():
            command = [sys.executable, __file__, "--devices", str(args.devices)]
            command += ["--minutes", str(args.minutes), "--one", str(batch)]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out))
    first = results[next(iter(ways))][0]
    print(
        f"bench_seal: {args.devices} devices x {len(METRICS)} values x {args.minutes} min backlog"
        f" ({first['rows']:,} readings, WAL {first['wal_mb']:.0f} MB), median of {args.repeat}"
    )
    for name, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        peak = statistics.median(r["peak_mb"] for r in runs)
        each = ", ".join(f"{r['wall']:.2f}" for r in runs)
        print(
            f"  {name:24s} {wall:6.2f} s  jobs {int(runs[0]['jobs']):3d}  seal peak RSS "
            f"{peak:7.0f} MB  (runs: {each})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
