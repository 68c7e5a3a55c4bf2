"""The collector beside collectd 5.12's modbus plugin: N Janitza meters at 1 s, one run.

Both pollers run at the same time on the same cores, each against its own light Modbus farm
(bench/modbus_farm.py: one process, one port and one connection per meter, real sockets), so
each farm's request counter belongs to one poller. One simulator process per meter is not
used: the project's pymodbus simulator costs ~0.4 ms CPU per request, and collectd's 61
requests per poll per meter would make 100 such servers saturate both cores by themselves.

- collectd (/usr/sbin/collectd, Debian collectd-core + libmodbus5): `LoadPlugin modbus` with
  one `<Data>` per value (61 float32 points of janitza_umg509pro, as its docs require),
  `Interval 1`, `LoadPlugin csv` writing into a temporary folder.
- ours: `energy-pipeline collect` on a generated config, HTTP output on (port 0), no history
  request made.

Measured over the same window of whole seconds: CPU s/s (utime+stime and the waited-for
children's cutime+cstime from /proc/<pid>/stat, summed over the poller's processes: our seal
processes count), Modbus requests per poll (the farm's counter over devices x seconds), complete
samples kept (a device-second with all 61 values in the output: Parquet raw rows for ours, CSV
rows for collectd), RSS (VmRSS summed over the processes every 0.2 s: the median, and the
largest sum seen, which for ours includes a seal process when one was caught running; the
`children` column counts the seal processes seen). The window is a whole number of minutes by
default so it holds our once-a-minute seals in proportion. Figures are medians over --repeats
runs. `--no-collectd` measures ours alone (the RSS figures need no peer; the CPU ratio does).

    .venv/bin/python bench/bench_peers.py [--seconds 60] [--devices 100] [--repeats 3]
        [--ours-only 1000] [--no-collectd]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_collector import ENV, start_farm, wait_up, write_config

from energy_pipeline.profiles import load_profile

COLLECTD = "/usr/sbin/collectd"
TICKS = os.sysconf("SC_CLK_TCK")
POINTS = load_profile("janitza_umg509pro", Path()).points


def family(pid: int) -> list[int]:
    """The process and all its descendants (our collector may start children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            children = (task / "children").read_text().split()
            todo.extend(int(c) for c in children)
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime (14-17)
    return total / TICKS


def rss_mb(pids: list[int]) -> float:
    """VmRSS in MB, summed over `pids`."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def sample_memory(pids: dict[str, int], until: float) -> dict[str, dict[str, float]]:
    """RSS summed over each poller's processes every 0.2 s until `until`: the median (what it
    holds) and the largest sum seen (our collector's includes its seal process, which lives
    for about a second each minute), with the number of seal processes seen."""
    sums: dict[str, list[float]] = {k: [] for k in pids}
    children: dict[str, set[int]] = {k: set() for k in pids}
    while time.monotonic() < until:
        for k, pid in pids.items():
            procs = family(pid)
            children[k].update(procs[1:])
            try:
                sums[k].append(rss_mb(procs))
            except FileNotFoundError:  # a seal process ended while it was read
                continue
        time.sleep(0.2)
    return {
        k: {
            "rss_mb": statistics.median(v),
            "peak_mb": max(v),
            "children": float(len(children[k])),
        }
        for k, v in sums.items()
    }


def farm_requests(farm: subprocess.Popen) -> int:
    assert farm.stdout is not None
    farm.send_signal(signal.SIGUSR1)
    line = farm.stdout.readline().split()
    assert line[0] == "requests", line
    return int(line[1])


def collectd_conf(folder: Path, base: int, count: int) -> Path:
    data = [
        f'  <Data "{p.name}">\n    RegisterBase {p.address}\n    RegisterType Float\n'
        f'    RegisterCmd ReadHolding\n    Type gauge\n    Instance "{p.name}"\n  </Data>'
        for p in POINTS
    ]
    collect = "".join(f'      Collect "{p.name}"\n' for p in POINTS)
    hosts = [
        f'  <Host "dev{i:04d}">\n    Address "127.0.0.1"\n    Port "{base + i}"\n'
        f'    Interval 1\n    <Slave 1>\n      Instance "umg"\n{collect}    </Slave>\n  </Host>'
        for i in range(count)
    ]
    text = "\n".join(
        [
            'Hostname "bench"',
            "FQDNLookup false",
            "Interval 1",
            f"ReadThreads {max(5, count // 10)}",
            f'BaseDir "{folder}"',
            f'PIDFile "{folder}/collectd.pid"',
            'PluginDir "/usr/lib/collectd"',
            'TypesDB "/usr/share/collectd/types.db"',
            "LoadPlugin modbus",
            "LoadPlugin csv",
            f'<Plugin csv>\n  DataDir "{folder}/csv"\n  StoreRates false\n</Plugin>',
            "<Plugin modbus>",
            *data,
            *hosts,
            "</Plugin>",
            "",
        ]
    )
    path = folder / "collectd.conf"
    path.write_text(text)
    return path


def collectd_complete(csv_dir: Path, count: int, t0: float, t1: float) -> int:
    """Per meter, the value file with the fewest rows in the window bounds its whole samples."""
    complete = 0
    for i in range(count):
        rows = []
        for p in POINTS:
            n = 0
            for f in (csv_dir / f"dev{i:04d}" / "modbus-umg").glob(f"gauge-{p.name}-*"):
                for line in f.read_text().splitlines()[1:]:
                    n += t0 <= float(line.split(",", 1)[0]) < t1
            rows.append(n)
        complete += min(rows)
    return complete


def ours_complete(data_dir: Path, t0: float, t1: float) -> int:
    lo = datetime.fromtimestamp(t0, UTC).isoformat()
    hi = datetime.fromtimestamp(t1, UTC).isoformat()
    raw = f"read_parquet('{data_dir}/raw_readings/**/*.parquet')"
    sql = (
        f"select count(*) from (select device_id, ts from {raw} "
        f"where ts >= '{lo}'::timestamptz and ts < '{hi}'::timestamptz "
        f"group by all having count(distinct metric) = {len(POINTS)})"
    )
    return duckdb.connect().execute(sql).fetchall()[0][0]


def ours_config(folder: Path, base: int, count: int) -> Path:
    path = write_config(folder, base, count)
    doc = yaml.safe_load(path.read_text())
    doc["outputs"] = {"http": {"port": 0}}
    path.write_text(yaml.safe_dump(doc))
    return path


def run_once(count: int, seconds: int, reply_ms: float, with_collectd: bool) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        folder = Path(tmp)
        (folder / "ours").mkdir()
        (folder / "collectd").mkdir()
        procs: list[subprocess.Popen] = []
        try:
            farm_o, base_o = start_farm(count, reply_ms)
            procs.append(farm_o)
            cfg = ours_config(folder / "ours", base_o, count)
            ours = subprocess.Popen(
                [sys.executable, "-m", "energy_pipeline", "collect", "--config", str(cfg)],
                env=ENV,
                stderr=subprocess.DEVNULL,
            )
            procs.append(ours)
            pollers: dict[str, tuple[subprocess.Popen, subprocess.Popen]] = {"ours": (ours, farm_o)}
            if with_collectd:
                farm_c, base_c = start_farm(count, reply_ms)
                procs.append(farm_c)
                conf = collectd_conf(folder / "collectd", base_c, count)
                cd = subprocess.Popen(
                    [COLLECTD, "-f", "-C", str(conf)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                procs.append(cd)
                pollers["collectd"] = (cd, farm_c)
            wait_up(folder / "ours" / "data", count, 90)
            time.sleep(3.0)
            t0 = float(int(time.time()) + 1)
            time.sleep(max(0.0, t0 + 0.5 - time.time()))  # counters read mid-second, off-tick
            start = {
                k: (cpu_seconds(family(p.pid)), farm_requests(f), time.monotonic())
                for k, (p, f) in pollers.items()
            }
            samples = sample_memory(
                {k: p.pid for k, (p, _) in pollers.items()}, time.monotonic() + seconds
            )
            end = {
                k: (cpu_seconds(family(p.pid)), farm_requests(f), time.monotonic())
                for k, (p, f) in pollers.items()
            }
            t1 = t0 + seconds
            time.sleep(2.5)  # let collectd's CSV writer and our landing catch up
            for p, _ in pollers.values():
                p.send_signal(signal.SIGTERM)
            for p, _ in pollers.values():
                p.wait(60)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
        figures: dict[str, dict] = {}
        for k in pollers:
            (c0, r0, w0), (c1, r1, w1) = start[k], end[k]
            kept = (
                ours_complete(folder / "ours" / "data", t0, t1)
                if k == "ours"
                else collectd_complete(folder / "collectd" / "csv", count, t0, t1)
            )
            figures[k] = {
                "cpu": (c1 - c0) / (w1 - w0),
                "requests_per_poll": (r1 - r0) / (count * seconds),
                "kept": kept,
                "expected": count * seconds,
                **samples[k],
            }
        return figures


def median_of(runs: list[dict[str, dict]], who: str) -> dict[str, float]:
    return {k: statistics.median(r[who][k] for r in runs) for k in runs[0][who]}


def line(label: str, m: dict[str, float]) -> str:
    return (
        f"{label:>22} {m['cpu']:8.3f} {m['requests_per_poll']:9.1f} "
        f"{m['kept']:>7.0f}/{m['expected']:<7.0f} {m['rss_mb']:7.1f} {m['peak_mb']:7.1f} "
        f"{m['children']:8.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ours-only", type=int, nargs="*", default=[], help="more sizes, our collector alone"
    )
    parser.add_argument("--reply-ms", type=float, default=0.0, help="farm response time")
    parser.add_argument("--no-collectd", action="store_true", help="our collector alone")
    args = parser.parse_args()
    peers = not args.no_collectd
    if peers and not shutil.which(COLLECTD):  # `make bench` goes on without the comparison
        print(f"# {COLLECTD} not found, ours alone: apt-get install collectd-core libmodbus5")
        peers = False
    print(
        f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
        f"{args.seconds} s windows, median of {args.repeats}; farm reply {args.reply_ms:g} ms"
    )
    print(
        f"{'poller':>22} {'CPU s/s':>8} {'req/poll':>9} {'complete samples':>16} "
        f"{'RSS MB':>7} {'peak MB':>7} {'children':>8}"
    )
    runs = [run_once(args.devices, args.seconds, args.reply_ms, peers) for _ in range(args.repeats)]
    who_ran = ("ours", "collectd") if peers else ("ours",)
    for i, r in enumerate(runs, 1):
        for who in who_ran:
            print(line(f"run {i} {who} {args.devices}", r[who]), flush=True)
    ours = median_of(runs, "ours")
    print(line(f"median ours {args.devices}", ours))
    if peers:
        cd = median_of(runs, "collectd")
        print(line(f"median collectd {args.devices}", cd))
        print(f"# collectd CPU / ours: {cd['cpu'] / max(ours['cpu'], 1e-9):.1f}x (target >= 10x)")
    print(
        f"# our RSS {ours['rss_mb']:.0f} MB (median over the window, target <= 100 MB); "
        f"peak {ours['peak_mb']:.0f} MB while a seal process ran"
    )
    for size in args.ours_only:
        more = [run_once(size, args.seconds, args.reply_ms, False) for _ in range(args.repeats)]
        print(line(f"median ours {size}", median_of(more, "ours")), flush=True)
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
