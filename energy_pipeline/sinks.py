"""What the collector fans its poll outcomes out to (live outputs: HTTP, metrics, MQTT, webhook,
file, alerts). `offer` is called from the collector's event loop once per tick and must never
block or raise: a sink queues (bounded, drop-oldest) and does its I/O in its own task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from energy_pipeline.readings import PollOutcome


class OutcomeSink(Protocol):
    async def start(self) -> None: ...

    def offer(self, outcomes: Sequence[PollOutcome]) -> None: ...

    async def stop(self) -> None: ...
