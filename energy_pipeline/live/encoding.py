"""Conditional and compressed API responses: a strong ETag per body, 304 for a matching
If-None-Match, gzip for clients that accept it. A dashboard refreshing every few seconds asks
for bodies that changed little or not at all, so the same body is hashed and compressed once."""

from __future__ import annotations

import gzip
import hashlib
from collections import OrderedDict

MIN_GZIP = 512
"""Smaller bodies are sent as they are: the gzip header would eat most of the saving."""
CACHED_BODIES = 64


def accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            name, _, q = params.strip().partition("=")
            if name.strip().lower() != "q":
                return True
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def matches(if_none_match: str, etag: str) -> bool:
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


class BodyCache:
    """ETag and gzipped form of the recently served bodies, keyed by content."""

    def __init__(self, size: int = CACHED_BODIES):
        self.size = size
        self._entries: OrderedDict[bytes, tuple[str, bytes | None]] = OrderedDict()

    def encode(self, body: bytes) -> tuple[str, bytes | None]:
        """(ETag, gzipped body or None when too small to be worth it)."""
        key = hashlib.blake2b(body, digest_size=16).digest()
        entry = self._entries.get(key)
        if entry is None:
            gz = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= MIN_GZIP else None
            entry = (f'"{key.hex()}"', gz)
            self._entries[key] = entry
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return entry
