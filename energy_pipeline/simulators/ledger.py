"""Exact running totals for a consumer that runs in cycles (a compressor that starts and stops).

Cycle k starts `k * period` seconds after site.EPOCH, runs for `duty[k] * period` at constant
levels (one per channel, e.g. electric and thermal power), then idles. The levels are planned
from the conditions at the cycle's start, so the total at any instant is the sum of whole cycles
before it plus the running part of the current one: exact, reproducible, never falling. Cycles
are planned vectorised in chunks and their prefix sums kept, so a reading costs an index lookup
(for a whole array of instants at once).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Plan = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""cycle start times (s since EPOCH) -> (duty in [0, 1] per cycle, levels (cycles x channels))."""

_CHUNK = 4096


class CycleLedger:
    def __init__(self, period_s: float, channels: int, plan: Plan):
        self.period_s = period_s
        self._plan = plan
        self.duty = np.zeros(0)
        self.levels = np.zeros((0, channels))
        self._cum = np.zeros((1, channels))

    def _ensure(self, k: int) -> None:
        have = self.duty.size
        if k < have:
            return
        upto = max(k + 1, have + _CHUNK)
        starts = np.arange(have, upto, dtype=np.float64) * self.period_s
        duty, levels = self._plan(starts)
        duty = np.clip(duty, 0.0, 1.0)
        self.duty = np.concatenate([self.duty, duty])
        self.levels = np.vstack([self.levels, levels])
        per_cycle = levels * (duty * self.period_s)[:, None]
        self._cum = np.vstack([self._cum, self._cum[-1] + np.cumsum(per_cycle, axis=0)])

    def index(self, t: np.ndarray) -> np.ndarray:
        """The cycle each instant falls in (cycles planned up to the latest)."""
        if t.size and float(t.min()) < 0:
            raise ValueError("simulated cycles start at site.EPOCH; no values before it")
        k = (t // self.period_s).astype(np.int64)
        if k.size:
            self._ensure(int(k.max()))
        return k

    def totals(self, t: np.ndarray) -> np.ndarray:
        """Integral of each channel's level from EPOCH to each instant (instants x channels)."""
        k = self.index(t)
        ran = np.minimum(t - k * self.period_s, self.duty[k] * self.period_s)
        return self._cum[k] + self.levels[k] * ran[..., None]
