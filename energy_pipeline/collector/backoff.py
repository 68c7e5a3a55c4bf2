"""Capped exponential backoff with jitter, so a dead device costs its bus and the event loop
little, and many devices that failed together do not retry in lockstep."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delay before the next attempt after `failures` consecutive failures.

    The first failure retries at the next tick (a single lost frame is common on serial buses);
    from the second on the delay doubles from `initial` up to `cap`, and each delay is drawn
    from [d/2, d] ("equal jitter"): never zero, never above the cap.
    """

    initial: float = 2.0
    cap: float = 300.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int) -> float:
        if failures <= 1:
            return 0.0
        exponent = min(failures - 2, 64)
        full = min(self.cap, self.initial * (2.0**exponent))
        return full / 2 + self.rng.uniform(0, full / 2)
