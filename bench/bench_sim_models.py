"""Simulated device models: per-instant `values_at` vs a day in one `values_between` call, and
the time of `simulate-history --days 7` for the demo site both ways.

`simulate-history` builds days of readings from the models, so their cost decides how long a
backfill (and the start of `make demo`) takes. All in one process, on the demo site's devices:

1. per device: instants/s asked one by one (`values_at`), one by one with the naive quantiser
   (encode then decode every point through the codec), and a day in one array call;
2. `simulate_history(days)` into a scratch lake: as shipped (array models in one call per
   device-day), and the naive way (every model asked per instant, as before `values_between`).

Prints medians of several rounds and the ratios.

    .venv/bin/python bench/bench_sim_models.py [--instants 2000] [--rounds 5]
        [--days 7] [--history-rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from energy_pipeline.config import load_config
from energy_pipeline.drivers.modbus.codec import decode_point, encode_point
from energy_pipeline.simulators import ArrayDeviceModel, DeviceModel, device_model, history
from energy_pipeline.simulators.modbus import ProfileModel

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 14, tzinfo=UTC)
HISTORY_END = datetime(2026, 1, 21, tzinfo=UTC)


def per_instant(model: DeviceModel, epoch_s: np.ndarray) -> None:
    for t in epoch_s.tolist():
        model.values_at(datetime.fromtimestamp(t, UTC))


def per_point(model: DeviceModel, epoch_s: np.ndarray) -> None:
    """The naive quantiser: the same model values, each point encoded and decoded by the codec."""
    assert isinstance(model, ProfileModel)
    for t in epoch_s.tolist():
        raw = model.unrounded_at(datetime.fromtimestamp(t, UTC))
        for point, value in zip(model.points, raw.tolist(), strict=True):
            decode_point(
                encode_point(bool(value) if point.data_type == "bool" else value, point), point
            )


def in_one_call(model: DeviceModel, epoch_s: np.ndarray) -> None:
    assert isinstance(model, ArrayDeviceModel)
    model.values_between(epoch_s)


def rate(
    fn: Callable[[DeviceModel, np.ndarray], None],
    model: DeviceModel,
    n: int,
    step: float,
    rounds: int,
) -> float:
    results = []
    for r in range(rounds):
        epoch_s = T0.timestamp() + r * 10**6 + step * np.arange(n, dtype=np.float64)
        start = time.perf_counter()
        fn(model, epoch_s)
        results.append(n / (time.perf_counter() - start))
    return statistics.median(results)


class _PerInstant:
    """A model seen only through `values_at`: how simulate-history asked before arrays."""

    def __init__(self, model: DeviceModel):
        self._model = model

    def values_at(self, ts: datetime) -> dict[str, float]:
        return self._model.values_at(ts)


def history_seconds(config_path: Path, days: float, naive: bool) -> float:
    scratch = Path(tempfile.mkdtemp(prefix="bench-history-"))
    try:
        shutil.copy(config_path, scratch / config_path.name)
        config = load_config(scratch / config_path.name)
        original = history.model_matrix
        patched = mock.patch.object(
            history, "model_matrix", lambda model, ts: original(_PerInstant(model), ts)
        )
        start = time.perf_counter()
        if naive:
            with patched:
                history.simulate_history(config, days, end=HISTORY_END, progress=None)
        else:
            history.simulate_history(config, days, end=HISTORY_END, progress=None)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(scratch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instants", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--history-rounds", type=int, default=3)
    args = parser.parse_args()
    config_path = REPO / "energy-pipeline.yaml"
    config = load_config(config_path)
    print(
        f"{'device':<10} {'points':>6} {'per-instant/s':>14} {'per-point codec/s':>18} "
        f"{'one call/s':>11} {'call/instant':>12}"
    )
    for dev in config.devices:
        model = device_model(dev, config)
        points = str(len(model.values_at(T0)))
        slow = rate(per_instant, model, args.instants, dev.interval, args.rounds)
        codec = fast = ratio = "-"
        if isinstance(model, ProfileModel):
            codec = f"{rate(per_point, model, args.instants, dev.interval, args.rounds):.0f}"
        if isinstance(model, ArrayDeviceModel):
            day = int(86_400 / dev.interval)
            value = rate(in_one_call, model, day, dev.interval, args.rounds)
            fast, ratio = f"{value:.0f}", f"{value / slow:.0f}x"
        print(f"{dev.id:<10} {points:>6} {slow:>14.0f} {codec:>18} {fast:>11} {ratio:>12}")
    print(f"\nsimulate-history --days {args.days:g}, demo site, {args.history_rounds} rounds each:")
    timings = {}
    for label, naive in (("per instant (before)", True), ("one call a day (now)", False)):
        runs = [history_seconds(config_path, args.days, naive) for _ in range(args.history_rounds)]
        timings[label] = statistics.median(runs)
        shown = ", ".join(f"{s:.1f}" for s in runs)
        print(f"  {label:<22} median {timings[label]:6.1f} s  ({shown})")
    before, now = timings.values()
    print(f"  speed-up {before / now:.1f}x")


if __name__ == "__main__":
    main()
