"""Progress marks of the collector, and the watchdog that turns them into systemd pings.

The scheduler marks the instant it dispatches next; every hand-off of polled outcomes to the
committer is counted, and the committer marks the hand-offs it has taken in. A ping goes out
only while both move: a wedged scheduler (its next instant long past) or a committer sitting
on work it was handed stops the pings, and systemd restarts the collector. A committer that
holds readings in memory because the disk is full still takes them in, so it keeps pinging:
a restart then would lose them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from energy_pipeline.collector.scheduler import Clock
from energy_pipeline.collector.state import CollectorState
from energy_pipeline.ops.notify import READY, WATCHDOG, Notifier, message

log = logging.getLogger("energy_pipeline.collector")

STATUS_EVERY = 10.0
"""Without a watchdog the STATUS= line is still refreshed this often (seconds)."""


@dataclass(slots=True)
class Heartbeat:
    next_due: float | None = None
    handed: int = 0
    taken: int = 0
    waiting_since: float | None = None
    stopping: bool = False
    scheduled: asyncio.Event = field(default_factory=asyncio.Event)

    def due(self, instant: float) -> None:
        """The scheduler will dispatch at `instant`; the first call means devices are scheduled."""
        self.next_due = instant
        self.scheduled.set()

    def hand(self, now: float) -> None:
        if self.waiting_since is None:
            self.waiting_since = now
        self.handed += 1

    def took(self, mark: int, now: float) -> None:
        """The committer took in every hand-off up to `mark` (what `handed` was when it began)."""
        self.taken = max(self.taken, mark)
        self.waiting_since = None if self.taken >= self.handed else now


def stalled(beat: Heartbeat, now: float, limit: float) -> str | None:
    """Why no ping may go out at `now`, or None while scheduler and committer move."""
    if beat.next_due is not None and now - beat.next_due > limit:
        return f"scheduler stalled: a tick due {now - beat.next_due:.1f} s ago was not taken"
    if beat.waiting_since is not None and now - beat.waiting_since > limit:
        return (
            f"committer stalled: {beat.handed - beat.taken} hand-offs waiting for "
            f"{now - beat.waiting_since:.1f} s"
        )
    return None


def summary_line(state: CollectorState) -> str:
    up = sum(1 for d in state.devices.values() if d.state == "up")
    line = f"{up}/{len(state.devices)} devices up, {state.readings_acknowledged} readings acked"
    if state.sealed_watermark is not None:
        line += f", sealed to {state.sealed_watermark.isoformat(timespec='seconds')}"
    if state.storage_error:
        line += f", STORAGE ERROR {state.storage_error}"
    return line


async def watch(
    beat: Heartbeat,
    state: CollectorState,
    notifier: Notifier,
    interval: float | None,
    clock: Clock,
) -> None:
    """READY once devices are scheduled, then WATCHDOG every `interval` while healthy, until
    the service stops (it then drains and seals without ticking: no stall to report)."""
    await beat.scheduled.wait()
    notifier.send(message(READY, status=summary_line(state)))
    withheld: str | None = None
    while True:
        await asyncio.sleep(interval or STATUS_EVERY)
        if beat.stopping:
            return
        if interval is None:
            notifier.send(message(status=summary_line(state)))
            continue
        reason = stalled(beat, clock.time(), interval)
        if reason != withheld:
            if reason:
                log.error("watchdog pings withheld", extra={"fields": {"reason": reason}})
            else:
                log.warning("watchdog pings resumed")
            withheld = reason
        if reason:
            notifier.send(message(status=reason))
        else:
            notifier.send(message(WATCHDOG, status=summary_line(state)))
