"""The bounded queue every live output buffers through: `put` never blocks and, when full,
drops the oldest item and counts it, so a stalled broker or webhook costs memory we chose up
front and never a poll."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    def __init__(self, maxsize: int):
        self._items: deque[T] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    def put_front(self, items: Iterable[T]) -> None:
        """Return a batch that could not be delivered yet. The returned items are the oldest,
        so when the queue filled up meanwhile they are the ones dropped."""
        for item in reversed(list(items)):
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
                continue
            self._items.appendleft(item)
        if self._items:
            self._ready.set()

    async def wait(self) -> None:
        """Until there is an item (without taking it)."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()

    async def get_batch(self, limit: int) -> list[T]:
        await self.wait()
        return [self._items.popleft() for _ in range(min(limit, len(self._items)))]
