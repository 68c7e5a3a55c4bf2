"""Which WAL segments still hold rows the lake lacks, and the seal that lands whole minutes.

Rows stay in their segments (on disk, not in memory) until a seal has renamed their minute's
files into place; only then may a segment be deleted. The seal runs in a process of its own
(`sealjob`), so the collector never loads Arrow (a 100-device collector holds ~50 MB less) and
what a seal allocates is gone with it. It runs beside the collector: polls go on being
acknowledged into the next segment while it writes, and the collector collects its report on a
later tick. It runs at low priority, so on a busy machine it waits for the poll loops, not they
for it, and it dies with the collector (PR_SET_PDEATHSIG): a collector killed mid-seal leaves
what a crash inside its own process would, temp files and an intact WAL.
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


@dataclass(slots=True)
class Segment:
    pending: int = 0
    """Rows not yet in the lake (an estimate until a seal reports the real count)."""
    last_us: int | None = None
    """Its newest row's instant; None while unknown (a segment found at start-up)."""
    landed_before_us: int | None = None
    """Its rows older than this are in the lake."""


@dataclass(slots=True)
class SealReport:
    files: int = 0
    polls: int = 0
    last_ack: dict[str, int] = field(default_factory=dict)


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


@dataclass(slots=True)
class Sealer:
    """Acknowledged rows not yet sealed, by WAL segment, and the sealing of whole minutes."""

    data_dir: Path
    collector_id: str
    segment_path: Callable[[int], Path]
    launch: Callable[[dict[str, Any]], Seal] = SealProcess
    segments: dict[int, Segment] = field(default_factory=dict)
    watermark_us: int | None = None
    running: Running | None = None

    def add(self, seq: int, rows: int, last_us: int) -> None:
        seg = self.segments.setdefault(seq, Segment())
        seg.pending += rows
        seg.last_us = last_us if seg.last_us is None else max(seg.last_us, last_us)

    def found(self, seqs: list[int]) -> None:
        """Segments on disk at start-up: what they hold is known once a seal has read them."""
        for seq in seqs:
            self.segments.setdefault(seq, Segment())

    @property
    def rows(self) -> int:
        return sum(s.pending for s in self.segments.values())

    def oldest_segment(self) -> int | None:
        return min(self.segments, default=None)

    def seal(self, before_us: int | None, sweep: tuple[int, int] | None = None) -> SealReport:
        """`start`, then wait for its report (start-up, shutdown, adopting a WAL)."""
        self.wait()
        self.start(before_us, sweep)
        return self.finish(block=True) or SealReport()

    def start(self, before_us: int | None, sweep: tuple[int, int] | None = None) -> None:
        """Start landing every row with ts < `before_us` from the segments known now (the
        caller has rotated the WAL, so none of them grows any more).

        `None` lands everything (WAL replay at start-up, shutdown) without moving the watermark:
        the current minute may still be growing and will be merged into when it is sealed.
        With no segment and no sweep there is nothing to run and the watermark moves at once.
        """
        assert self.running is None, "one seal at a time"
        if not self.segments and sweep is None:
            self.advance(before_us)
            return
        job = {
            "data_dir": str(self.data_dir),
            "collector_id": self.collector_id,
            "before_us": before_us,
            "segments": [
                {
                    "seq": seq,
                    "path": str(self.segment_path(seq)),
                    "landed_before_us": s.landed_before_us,
                }
                for seq, s in sorted(self.segments.items())
            ],
            "sweep": sweep,
        }
        self.running = Running(self.launch(job), before_us)

    def finish(self, block: bool = False) -> SealReport | None:
        """The running seal's report once it is done (None while it runs or when none runs);
        its segments' figures and the watermark are updated first.

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
        self.advance(before_us)
        return SealReport(report["files"], report["polls"], report["last_ack"])

    def wait(self) -> None:
        """Let a running seal end (its OSError is dropped: its rows are still pending)."""
        with contextlib.suppress(OSError):
            self.finish(block=True)

    def advance(self, before_us: int | None) -> None:
        """Every minute before `before_us` is complete in the lake."""
        if before_us is not None:
            self.watermark_us = max(self.watermark_us or before_us, before_us)
