"""Which WAL segments still hold rows the lake lacks, and the seal that lands whole minutes.

Rows stay in their segments (on disk, not in memory) until a seal has renamed their minute's
files into place; only then may a segment be deleted. The seal runs in its own short-lived
process (`sealjob`), so the collector never loads Arrow: a 100-device collector holds ~40 MB
less, and what a seal allocates is gone with the process.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_pipeline.collector.sealjob import EXIT_OS_ERROR

SEAL_TIMEOUT_S = 300.0
"""Longest a seal may take before it is killed and retried. A minute of 1,000 devices seals in
about a second; acknowledgements wait while a seal runs, so a hung one must not hold them long."""


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


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """The seal process, started and awaited. Raises OSError when it could not land the rows
    (its own OSError, a crash, a timeout); the segments then stay for the next try."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "energy_pipeline.collector.sealjob"],
            input=json.dumps(job).encode(),
            capture_output=True,
            timeout=SEAL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OSError(errno.ETIMEDOUT, f"seal process killed after {SEAL_TIMEOUT_S:g} s") from None
    if done.returncode == 0:
        return json.loads(done.stdout)
    if done.returncode == EXIT_OS_ERROR:
        e = json.loads(done.stdout)["error"]
        raise OSError(e["errno"], e["strerror"], e["filename"])
    last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
    raise OSError(errno.EIO, f"seal process exited with {done.returncode}: {last}")


@dataclass(slots=True)
class Sealer:
    """Acknowledged rows not yet sealed, by WAL segment, and the sealing of whole minutes."""

    data_dir: Path
    collector_id: str
    segment_path: Callable[[int], Path]
    run: Callable[[dict[str, Any]], dict[str, Any]] = run_job
    segments: dict[int, Segment] = field(default_factory=dict)
    watermark_us: int | None = None

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
        """Land every row with ts < `before_us` from segments no longer appended to.

        `None` lands everything (WAL replay at start-up, shutdown) without moving the watermark:
        the current minute may still be growing and will be merged into when it is sealed.

        Raises OSError (nothing is forgotten then; the next call retries).
        """
        if not self.segments and sweep is None:
            self.advance(before_us)
            return SealReport()
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
        report = self.run(job)
        for seq, figures in report["segments"].items():
            seg = self.segments[int(seq)]
            seg.pending, seg.last_us = figures["pending"], figures["last_us"]
            if before_us is None or seg.last_us is None or seg.last_us < before_us:
                del self.segments[int(seq)]
            else:
                seg.landed_before_us = before_us
        self.advance(before_us)
        return SealReport(report["files"], report["polls"], report["last_ack"])

    def advance(self, before_us: int | None) -> None:
        """Every minute before `before_us` is complete in the lake."""
        if before_us is not None:
            self.watermark_us = max(self.watermark_us or before_us, before_us)
