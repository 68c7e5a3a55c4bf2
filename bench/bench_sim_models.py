"""Simulated device models: `values_at` per second, vectorised quantisation vs per-point codec.

`simulate-history` builds days of readings from `values_at`, so its cost per instant decides how
long a backfill takes. Both ways run in the same process on the demo site's devices: the model's
vectorised quantiser, and the naive way (encode then decode every point through the codec).
Prints medians of several rounds and the ratio.

    .venv/bin/python bench/bench_sim_models.py [--instants 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from energy_pipeline.config import load_config
from energy_pipeline.drivers.modbus.codec import decode_point, encode_point
from energy_pipeline.simulators import device_model
from energy_pipeline.simulators.modbus import ProfileModel

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 14, tzinfo=UTC)


def vectorised(model: ProfileModel, instants: list[datetime]) -> None:
    for ts in instants:
        model.values_at(ts)


def per_point(model: ProfileModel, instants: list[datetime]) -> None:
    """The naive way: the same model values, each point encoded and decoded by the codec."""
    for ts in instants:
        for point, value in zip(model.points, model.unrounded_at(ts).tolist(), strict=True):
            words = encode_point(bool(value) if point.data_type == "bool" else value, point)
            decode_point(words, point)


def rate(fn, model: ProfileModel, n: int, rounds: int) -> float:
    results = []
    for r in range(rounds):
        instants = [T0 + timedelta(seconds=15 * i + r * 10**6) for i in range(n)]
        start = time.perf_counter()
        fn(model, instants)
        results.append(n / (time.perf_counter() - start))
    return statistics.median(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instants", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    config = load_config(REPO / "energy-pipeline.yaml")
    print(f"{'device':<12} {'points':>6} {'vectorised/s':>13} {'per-point/s':>12} {'ratio':>6}")
    for dev in config.devices:
        model = device_model(dev, config)
        model.values_at(T0)
        fast = rate(vectorised, model, args.instants, args.rounds)
        slow = rate(per_point, model, args.instants, args.rounds)
        print(
            f"{dev.id:<12} {len(model.names):>6} {fast:>13.0f} {slow:>12.0f} {fast / slow:>5.1f}x"
        )


if __name__ == "__main__":
    main()
