"""The collector's unsealed rows, by WAL segment, and the sealing of whole minutes.

Rows stay here (and in the WAL) until `lake.seal.LakeWriter` has renamed their minute's files
into place; only then may the WAL segments they came from be deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from energy_pipeline.lake.seal import LakeWriter
from energy_pipeline.readings import TS_TYPE


@dataclass(slots=True)
class Pending:
    segment: int
    raw: pa.Table
    polls: pa.Table


@dataclass(slots=True)
class Sealer:
    """Acknowledged rows not yet sealed, by WAL segment, and the sealing of whole minutes."""

    writer: LakeWriter
    entries: list[Pending] = field(default_factory=list)
    watermark_us: int | None = None

    def add(self, segment: int, raw: pa.Table, polls: pa.Table) -> None:
        self.entries.append(Pending(segment, raw, polls))

    @property
    def rows(self) -> int:
        return sum(e.raw.num_rows + e.polls.num_rows for e in self.entries)

    @property
    def nbytes(self) -> int:
        return sum(e.raw.nbytes + e.polls.nbytes for e in self.entries)

    def oldest_segment(self) -> int | None:
        return min((e.segment for e in self.entries), default=None)

    def seal(self, before_us: int | None) -> int:
        """Land every row with ts < `before_us`; returns files written.

        `None` lands everything (WAL replay at start-up) without moving the watermark: the
        current minute may still be growing and will be merged into when it is sealed.

        Raises OSError (nothing is dropped from memory then; the next call retries).
        """
        if not self.entries:
            if before_us is not None:
                self.watermark_us = max(self.watermark_us or before_us, before_us)
            return 0
        raw = pa.concat_tables([e.raw for e in self.entries])
        polls = pa.concat_tables([e.polls for e in self.entries])
        if before_us is None:
            files = self.writer.write(raw, polls)
            self.entries = []
            return files
        limit = pa.scalar(before_us, type=pa.int64()).cast(TS_TYPE)
        files = self.writer.write(
            raw.filter(pc.less(raw["ts"], limit)), polls.filter(pc.less(polls["ts"], limit))
        )
        kept: list[Pending] = []
        for e in self.entries:
            later_raw = e.raw.filter(pc.greater_equal(e.raw["ts"], limit))
            later_polls = e.polls.filter(pc.greater_equal(e.polls["ts"], limit))
            if later_raw.num_rows or later_polls.num_rows:
                kept.append(Pending(e.segment, later_raw, later_polls))
        self.entries = kept
        self.watermark_us = max(self.watermark_us or before_us, before_us)
        return files
