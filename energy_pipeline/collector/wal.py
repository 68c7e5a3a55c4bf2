"""The write-ahead log: a poll is acknowledged once its frame is on disk (one fdatasync per
commit for every device of the tick).

A segment file is a sequence of frames: `MAGIC | payload length | crc32 | payload`, the payload
being one commit packed by `frames` (`EPW2`). Segments written before that held two Arrow IPC
streams (`EPW1`); the seal process still reads them, so a log left by an older collector lands.
A crash can leave a torn last frame; reading stops at the first frame whose length or checksum
does not hold, which is exactly what was acknowledged. After a failed write the segment is cut
back to its last good frame, or, if even that fails, abandoned, so a torn frame is never
followed by a good one.

Segments are rotated before every seal and deleted once all their rows are in the lake.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from energy_pipeline.lake.files import fsync_dir

MAGIC = b"EPW2"
MAGIC_ARROW = b"EPW1"
_HEADER = struct.Struct("<4sII")
SUFFIX = ".wal"


def encode_frame(payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode_frames(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(magic, payload) of each frame up to the first torn or corrupt one."""
    pos = 0
    while pos + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        payload = data[start : start + length]
        if (
            magic not in (MAGIC, MAGIC_ARROW)
            or len(payload) != length
            or zlib.crc32(payload) != crc
        ):
            return
        yield magic, payload
        pos = start + length


class WriteAheadLog:
    """Segments `<seq>.wal` in one folder, owned by one collector (its lock guards the folder).
    Written here; read back by the seal process (`sealjob`)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._fd: int | None = None
        self._size = 0
        self.segment = self._last_segment()

    def _last_segment(self) -> int:
        seqs = self.segments()
        return seqs[-1] if seqs else 0

    def segments(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(p.stem) for p in self.folder.glob(f"*{SUFFIX}") if p.stem.isdigit())

    def path(self, seq: int) -> Path:
        return self.folder / f"{seq:012d}{SUFFIX}"

    def rotate(self) -> int:
        """Start a new segment; later appends go there. Returns its number."""
        self.close()
        self.segment += 1
        return self.segment

    def _open(self) -> int:
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.path(self.segment)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                self._size = os.fstat(fd).st_size
                fsync_dir(self.folder)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd

    def append(self, frame: bytes) -> int:
        """Write and fdatasync one frame; returns the segment it landed in. Raises OSError."""
        fd = self._open()
        try:
            view = memoryview(frame)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fdatasync(fd)
        except OSError:
            self._cut_back(fd)
            raise
        self._size += len(frame)
        return self.segment

    def _cut_back(self, fd: int) -> None:
        try:
            os.ftruncate(fd, self._size)
            os.fdatasync(fd)
        except OSError:
            self.close()
            self.segment += 1

    def delete_before(self, seq: int) -> None:
        """Remove segments older than `seq` (their rows are all in the lake)."""
        removed = False
        for old in self.segments():
            if old < seq and not (old == self.segment and self._fd is not None):
                self.path(old).unlink(missing_ok=True)
                removed = True
        if removed:
            fsync_dir(self.folder)

    def disk_bytes(self) -> int:
        total = 0
        for seq in self.segments():
            try:
                total += self.path(seq).stat().st_size
            except FileNotFoundError:
                continue
        return total

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
