"""Which WAL segments still hold rows the lake lacks, and the seal that lands whole minutes.

Rows stay in their segments (on disk, not in memory) until a seal has renamed their minute's
files into place; only then may a segment be deleted. The seal runs in a process of its own
(`sealjob`), so the collector never loads Arrow (a 100-device collector holds ~50 MB less) and
what a seal allocates is gone with it. It runs beside the collector: polls go on being
acknowledged into the next segment while it writes, and the collector collects its report on a
later tick. It runs at low priority, so on a busy machine it waits for the poll loops, not they
for it, and it dies with the collector (PR_SET_PDEATHSIG): a collector killed mid-seal leaves
what a crash inside its own process would, temp files and an intact WAL.

A seal job reads only segments that may hold rows it must land, at most `SEAL_BATCH_BYTES` of
them (the oldest first; always at least one), and holds their rows several times over while it
writes, so a backlog (a lake that refused writes for hours, a large WAL found at start-up) lands
in bounded steps, each well inside the timeout, instead of in one job that would run out of
memory or time and be retried forever. The watermark moves once no segment holds an unlanded
row before it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from energy_pipeline.collector.sealjob import EXIT_OS_ERROR

SEAL_TIMEOUT_S = 300.0
"""Longest a seal may take before it is killed and retried (a minute of 1,000 devices takes
1.3 s on the 2-core test machine, start-up included)."""

SEAL_BATCH_BYTES = 128 * 1024 * 1024
"""Most WAL bytes one seal job reads: about 1.4 minutes of a 1,000-device worker (~1.5 MB a
tick), 15 of a 100-device collector; the job peaks at a few times this."""


@dataclass(slots=True)
class Segment:
    pending: int = 0
    """Rows not yet in the lake (an estimate until a seal reports the real count)."""
    first_us: int | None = None
    """Its oldest row's instant; None while unknown (a segment found at start-up)."""
    last_us: int | None = None
    """Its newest row's instant; None while unknown (a segment found at start-up)."""
    landed_before_us: int | None = None
    """Its rows older than this are in the lake."""
    size: int = 0
    """Its bytes on disk: what a seal job will read."""


@dataclass(slots=True)
class SealReport:
    files: int = 0
    polls: int = 0
    last_ack: dict[str, int] = field(default_factory=dict)
    whole: bool = True
    """The job covered every segment that held rows to land (else the next job goes on)."""

    def add(self, other: SealReport) -> None:
        self.files += other.files
        self.polls += other.polls
        for dev_id, ts_us in other.last_ack.items():
            self.last_ack[dev_id] = max(self.last_ack.get(dev_id, ts_us), ts_us)
        self.whole = other.whole


class Seal(Protocol):
    """A started seal job: `poll` gives its report once done (None while it runs), `wait`
    blocks for it; both raise OSError when the rows could not be landed."""

    def poll(self) -> dict[str, Any] | None: ...

    def wait(self) -> dict[str, Any]: ...


class SealProcess:
    """`python -m energy_pipeline.collector.sealjob`, its output in temp files so a large
    report or traceback never blocks it on a full pipe."""

    def __init__(self, job: dict[str, Any]):
        self._files = contextlib.ExitStack()  # outlives __init__: closed once the report is read
        self._out: IO[bytes] = self._files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        self._err: IO[bytes] = self._files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        self._started = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "energy_pipeline.collector.sealjob"],
            stdin=subprocess.PIPE,
            stdout=self._out,
            stderr=self._err,
        )
        assert self._proc.stdin is not None
        with self._proc.stdin:
            self._proc.stdin.write(json.dumps({**job, "parent_pid": os.getpid()}).encode())

    def poll(self) -> dict[str, Any] | None:
        if self._proc.poll() is None:
            if time.monotonic() - self._started <= SEAL_TIMEOUT_S:
                return None
            self._proc.kill()
            self._proc.wait()
            self._close()
            raise OSError(errno.ETIMEDOUT, f"seal process killed after {SEAL_TIMEOUT_S:g} s")
        return self._report()

    def wait(self) -> dict[str, Any]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(max(0.0, SEAL_TIMEOUT_S - (time.monotonic() - self._started)))
        report = self.poll()
        assert report is not None
        return report

    def _report(self) -> dict[str, Any]:
        self._out.seek(0)
        self._err.seek(0)
        out, err = self._out.read(), self._err.read()
        self._close()
        code = self._proc.returncode
        if code == 0:
            return json.loads(out)
        if code == EXIT_OS_ERROR:
            e = json.loads(out)["error"]
            raise OSError(e["errno"], e["strerror"], e["filename"])
        last = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise OSError(errno.EIO, f"seal process exited with {code}: {last}")

    def _close(self) -> None:
        self._files.close()


@dataclass(slots=True)
class Running:
    seal: Seal
    before_us: int | None
    whole: bool


def _due(seg: Segment, before_us: int | None) -> bool:
    """Whether a seal landing rows before `before_us` (None: all) must read `seg`. A segment
    kept after a seal (its newest rows were later) is not due again until the target moves,
    nor is one holding only later rows: a job over them would land nothing, and a batch that
    must wait for them would hold the watermark back for good."""
    if before_us is None or seg.first_us is None:
        return True
    if seg.landed_before_us is not None and seg.landed_before_us >= before_us:
        return False
    return seg.first_us < before_us


@dataclass(slots=True)
class Sealer:
    """Acknowledged rows not yet sealed, by WAL segment, and the sealing of whole minutes."""

    data_dir: Path
    collector_id: str
    segment_path: Callable[[int], Path]
    launch: Callable[[dict[str, Any]], Seal] = SealProcess
    batch_bytes: int = SEAL_BATCH_BYTES
    segments: dict[int, Segment] = field(default_factory=dict)
    watermark_us: int | None = None
    running: Running | None = None

    def add(self, seq: int, rows: int, first_us: int, last_us: int, size: int) -> None:
        seg = self.segments.setdefault(seq, Segment())
        seg.pending += rows
        seg.size += size
        seg.first_us = first_us if seg.first_us is None else min(seg.first_us, first_us)
        seg.last_us = last_us if seg.last_us is None else max(seg.last_us, last_us)

    def found(self, seqs: list[int]) -> None:
        """Segments on disk at start-up: what they hold is known once a seal has read them."""
        for seq in seqs:
            try:
                size = self.segment_path(seq).stat().st_size
            except FileNotFoundError:
                size = 0
            self.segments.setdefault(seq, Segment(size=size))

    @property
    def rows(self) -> int:
        return sum(s.pending for s in self.segments.values())

    def oldest_segment(self) -> int | None:
        return min(self.segments, default=None)

    def seal(self, before_us: int | None) -> SealReport:
        """`start` and wait for each job's report until every segment is covered (start-up,
        shutdown, adopting a WAL); the reports summed."""
        self.wait()
        total = SealReport()
        while True:
            self.start(before_us)
            report = self.finish(block=True)
            if report is None:
                return total
            total.add(report)
            if report.whole:
                return total

    def start(self, before_us: int | None) -> None:
        """Start landing every row with ts < `before_us` from the segments known now (the
        caller has rotated the WAL, so none of them grows any more).

        `None` lands everything (WAL replay at start-up, shutdown) without moving the watermark:
        the current minute may still be growing and will be merged into when it is sealed.
        The job reads the oldest segments that may hold such rows, up to `batch_bytes`; with
        none there is nothing to run and the watermark moves at once.
        """
        assert self.running is None, "one seal at a time"
        due = [seq for seq, s in sorted(self.segments.items()) if _due(s, before_us)]
        if not due:
            self.advance(before_us)
            return
        batch, size = [], 0
        for seq in due:
            if batch and size + self.segments[seq].size > self.batch_bytes:
                break
            batch.append(seq)
            size += self.segments[seq].size
        job = {
            "data_dir": str(self.data_dir),
            "collector_id": self.collector_id,
            "before_us": before_us,
            "segments": [
                {
                    "seq": seq,
                    "path": str(self.segment_path(seq)),
                    "landed_before_us": self.segments[seq].landed_before_us,
                }
                for seq in batch
            ],
        }
        self.running = Running(self.launch(job), before_us, len(batch) == len(due))

    def finish(self, block: bool = False) -> SealReport | None:
        """The running seal's report once it is done (None while it runs or when none runs);
        its segments' figures and, if it covered every due one, the watermark are updated first.

        Raises OSError (nothing is forgotten then; the next start retries).
        """
        if self.running is None:
            return None
        running = self.running
        try:
            report = running.seal.wait() if block else running.seal.poll()
        except OSError:
            self.running = None
            raise
        if report is None:
            return None
        self.running = None
        before_us = running.before_us
        for seq, figures in report["segments"].items():
            seg = self.segments[int(seq)]
            seg.pending, seg.last_us = figures["pending"], figures["last_us"]
            if before_us is None or seg.last_us is None or seg.last_us < before_us:
                del self.segments[int(seq)]
            else:
                seg.landed_before_us = before_us
        if running.whole:
            self.advance(before_us)
        return SealReport(report["files"], report["polls"], report["last_ack"], running.whole)

    def wait(self) -> None:
        """Let a running seal end (its OSError is dropped: its rows are still pending)."""
        with contextlib.suppress(OSError):
            self.finish(block=True)

    def advance(self, before_us: int | None) -> None:
        """Every minute before `before_us` is complete in the lake."""
        if before_us is not None:
            self.watermark_us = max(self.watermark_us or before_us, before_us)
