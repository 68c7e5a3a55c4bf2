"""Forecast speed and skill: 10 devices x 35 days of simulated 15-minute load.

The targets come from the simulators' device models (5 Janitza analysers, 5 heat pumps: the
energy counter sampled at every quarter-hour, differenced), written as forecast_features day
files into a fresh lake. Prints (medians of --repeat runs, seconds):
- the seasonal naive of the day for all devices (the baseline, the naive way),
- training the gradient-boosted model for the day (one fit per device),
- the rolling-origin backtest (7 origins, one fit each, per device),
- the whole `load_forecast` asset for the day in one Dagster run (read, both, write);
and per device the backtest MAE of the seasonal naive and of the model, and the skill.
Target: the whole asset for 10 devices < 30 s.

    python bench/bench_forecast.py [--devices 10] [--days 35] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg

from energy_pipeline.catalog import build_catalog
from energy_pipeline.config import load_config
from energy_pipeline.defs.assemble import build_definitions
from energy_pipeline.lake.layout import FORECAST_FEATURES
from energy_pipeline.lake.scan import read_days
from energy_pipeline.lake.tables import write_day
from energy_pipeline.simulators import device_model
from energy_pipeline.simulators.history import model_matrix
from energy_pipeline.transforms import forecast as fc
from energy_pipeline.transforms.schemas import FEATURES_SCHEMA
from energy_pipeline.transforms.timegrid import day_window

DEVICE = """  - {{id: {id}, driver: modbus, profile: {profile},
     connection: {{transport: tcp, host: 127.0.0.1, port: 15020}}}}
"""


def site(folder: Path, devices: int) -> Path:
    lines = [
        DEVICE.format(
            id=f"{'umg' if i % 2 == 0 else 'hp'}{i // 2 + 1}",
            profile="janitza_umg509pro" if i % 2 == 0 else "heatpump_generic",
        )
        for i in range(devices)
    ]
    path = folder / "site.yaml"
    path.write_text(
        "site: {name: bench, timezone: Europe/Berlin, country: DE}\n"
        f"storage: {{data_dir: data}}\ndevices:\n{''.join(lines)}"
    )
    return path


def write_features(config_path: Path, first: date, days: int) -> None:
    """forecast_features day files with the target of every device and quarter-hour."""
    config = load_config(config_path)
    tz = ZoneInfo(config.site.timezone)
    catalog = build_catalog(config)
    for offset in range(days):
        day = first + timedelta(days=offset)
        start, end = day_window(day, tz)
        edges = np.arange(start.timestamp(), end.timestamp() + 1, 900.0)
        parts = []
        for device in config.devices:
            names, values = model_matrix(device_model(device, config), edges)
            metric, kind = catalog.target(device.id, names)  # type: ignore[misc]
            column = values[:, names.index(metric)]
            target = np.diff(column) if kind == "energy" else column[:-1]
            ts = [datetime.fromtimestamp(t, UTC) for t in edges[:-1].tolist()]
            local = [t.astimezone(tz) for t in ts]
            n = len(ts)
            parts.append(
                pa.table(
                    {
                        "day": [day] * n,
                        "ts": ts,
                        "local_ts": [t.replace(tzinfo=None) for t in local],
                        "device_id": [device.id] * n,
                        "target_metric": [metric] * n,
                        "target_kind": [kind] * n,
                        "target": target,
                        "minutes_present": np.full(n, 15, np.int16),
                        "slot_of_day": np.arange(n, dtype=np.int16),
                        "hour": np.array([t.hour for t in local], np.int8),
                        "day_of_week": np.full(n, day.weekday(), np.int8),
                        "is_weekend": np.full(n, day.weekday() >= 5),
                        "is_holiday": np.zeros(n, bool),
                    }
                )
            )
        table = pa.concat_tables(parts, promote_options="default")
        for field in FEATURES_SCHEMA:
            if field.name not in table.column_names:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        write_day(config.data_dir, FORECAST_FEATURES, day, table, FEATURES_SCHEMA)


def median(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f} s (runs: {', '.join(f'{x:.2f}' for x in xs)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = site(Path(tmp), args.devices)
        config = load_config(path)
        tz = ZoneInfo(config.site.timezone)
        target_day = datetime.now(UTC).astimezone(tz).date() - timedelta(days=1)
        first = target_day - timedelta(days=args.days)
        t = time.perf_counter()
        write_features(path, first, args.days)
        print(
            f"{args.devices} devices x {args.days} days of forecast_features written in "
            f"{time.perf_counter() - t:.1f} s; forecasting {target_day}"
        )
        history_days = [target_day - timedelta(days=i) for i in range(fc.HISTORY_DAYS, 0, -1)]
        features = read_days(config.data_dir, FORECAST_FEATURES, history_days, FEATURES_SCHEMA)
        series = fc.series_of(features)
        history = sorted(set(features.column("day").to_pylist()))
        naive_runs, train_runs, backtest_runs, asset_runs = [], [], [], []
        tests: dict[str, fc.Backtest] = {}
        for _ in range(args.repeat):
            t = time.perf_counter()
            for s in series:
                fc.naive(s, target_day, tz)
            naive_runs.append(time.perf_counter() - t)
            t = time.perf_counter()
            for s in series:
                fc.learned(s, target_day, tz, "DE", history)
            train_runs.append(time.perf_counter() - t)
            t = time.perf_counter()
            tests = {s.device_id: fc.backtest(s, target_day, tz, "DE", history) for s in series}
            backtest_runs.append(time.perf_counter() - t)
            job = build_definitions(config).resolve_job_def("forecast_job")
            t = time.perf_counter()
            result = job.execute_in_process(
                partition_key=target_day.isoformat(), instance=dg.DagsterInstance.ephemeral()
            )
            asset_runs.append(time.perf_counter() - t)
            assert result.success
        print(f"  seasonal naive, all devices (the naive way): {median(naive_runs)}")
        print(f"  gradient boosting, training for the day:     {median(train_runs)}")
        print(
            f"  rolling-origin backtest ({fc.BACKTEST_DAYS} origins):      {median(backtest_runs)}"
        )
        print(f"  whole load_forecast asset (target < 30 s):   {median(asset_runs)}")
        print(f"\n  {'device':10} {'target':28} {'MAE naive':>10} {'MAE model':>10} {'skill':>7}")
        for device_id, tested in tests.items():
            (s,) = [x for x in series if x.device_id == device_id]
            naive_mae, model_mae = tested.score(fc.NAIVE).mae, tested.score(fc.MODEL).mae
            skill = 1 - model_mae / naive_mae if naive_mae and model_mae is not None else None
            print(
                f"  {device_id:10} {s.target_metric:28} {naive_mae:10.3f} {model_mae:10.3f} "
                f"{skill:7.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
