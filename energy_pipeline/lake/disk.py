"""Free space of the file system holding the lake, and when it counts as low.

Free means what an unprivileged writer may still use (statvfs `f_bavail`): the collector
does not run as root, so the blocks reserved for root are not its to fill.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLEAR_MARGIN = 1.05
"""A low-space alert clears only 5 % above its limit, so space hovering there raises once."""


@dataclass(frozen=True, slots=True)
class DiskSpace:
    free_bytes: int
    total_bytes: int

    @property
    def free_ratio(self) -> float:
        return self.free_bytes / self.total_bytes if self.total_bytes else 0.0


def human_bytes(n: float) -> str:
    """Decimal units, as disk vendors and `df -H` count: 3.1 MB, 12.00 GB."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if unit in ("TB", "GB") else f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def disk_space(path: Path) -> DiskSpace:
    st = os.statvfs(path)
    return DiskSpace(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)


def free_limit(total_bytes: int, min_free_percent: float, min_free_gb: float) -> float:
    """Bytes below which free space is low: the stricter of the two thresholds."""
    return max(total_bytes * min_free_percent / 100.0, min_free_gb * 1e9)


def low_space(
    space: DiskSpace, min_free_percent: float, min_free_gb: float, *, was_low: bool = False
) -> str | None:
    """Why free space is low (None when it is not); once low, it stays low up to the margin."""
    limit = free_limit(space.total_bytes, min_free_percent, min_free_gb)
    if space.free_bytes >= limit * (CLEAR_MARGIN if was_low else 1.0):
        return None
    return (
        f"{human_bytes(space.free_bytes)} free ({space.free_ratio:.1%}), below "
        f"min_free_percent {min_free_percent:g} % / min_free_gb {min_free_gb:g}"
    )
