"""The latest values: last outcome per device, the last hour of charted metrics, and the
consecutive-failure count the dashboard shows. Updated synchronously by `offer` (constant work
per outcome, no copies of the values); read by the API, metrics and health."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

from energy_pipeline.catalog import DeviceMeaning
from energy_pipeline.readings import PollOutcome

Clock = Callable[[], datetime]


class _Series:
    """One charted metric: (epoch seconds, value) pairs, with the metric's index cached per
    names tuple (drivers keep the tuple object stable, so a lookup is an identity check)."""

    __slots__ = ("_index", "_names", "metric", "points")

    def __init__(self, metric: str):
        self.metric = metric
        self.points: deque[tuple[float, float]] = deque()
        self._names: tuple[str, ...] | None = None
        self._index: int | None = None

    def add(self, names: tuple[str, ...], values: Sequence[float], at: float, keep: float) -> None:
        if names is not self._names:
            self._names = names
            self._index = names.index(self.metric) if self.metric in names else None
        if self._index is None:
            return
        value = float(values[self._index])
        if value == value:
            self.points.append((at, value))
        while self.points and self.points[0][0] < at - keep:
            self.points.popleft()


class LatestStore:
    def __init__(
        self,
        meta: dict[str, DeviceMeaning],
        chart: Sequence[tuple[str, str]],
        history_seconds: float,
        clock: Clock,
    ):
        self.meta = meta
        self.clock = clock
        self.latest: dict[str, PollOutcome] = {}
        self.last_ok: dict[str, PollOutcome] = {}
        self.failures: dict[str, int] = dict.fromkeys(meta, 0)
        self.version = 0
        self.last_offer: datetime | None = None
        self._keep = history_seconds
        self._series: dict[str, dict[str, _Series]] = {}
        for device, metric in chart:
            self._series.setdefault(device, {})[metric] = _Series(metric)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def offer(self, outcomes: Sequence[PollOutcome]) -> None:
        for outcome in outcomes:
            device = outcome.device_id
            self.latest[device] = outcome
            sample = outcome.sample
            if sample is None:
                self.failures[device] = self.failures.get(device, 0) + 1
                continue
            self.failures[device] = 0
            self.last_ok[device] = outcome
            series = self._series.get(device)
            if series:
                at = outcome.ts.timestamp()
                for s in series.values():
                    s.add(sample.names, sample.values, at, self._keep)
        self.version += 1
        self.last_offer = self.clock()

    def chart(self) -> list[dict[str, object]]:
        return [
            {
                "device": device,
                "metric": metric,
                "unit": self.meta[device].metric(metric).unit if device in self.meta else "",
                "points": [[round(t, 3), v] for t, v in s.points],
            }
            for device, by_metric in self._series.items()
            for metric, s in by_metric.items()
        ]
