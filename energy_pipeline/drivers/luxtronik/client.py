"""The Luxtronik room's I/O edge: one TCP connection per poll, three read commands in turn.

The controller's config interface serves one client at a time and its own web UI and apps use
the same port, so the connection is opened for a poll and closed right after, as
python-luxtronik does. Every step (connect, send, header, items) has its own timeout, reads
are exact-length (`readexactly`: a short segment from the kernel is just the first part of
the frame), and every reply is validated by the codec before it is returned. Only read
commands are ever sent. `driver` holds the retries and the decoding.
"""

from __future__ import annotations

import asyncio
import os

import numpy as np

from energy_pipeline.drivers.base import (
    DeviceConnectionError,
    DeviceProtocolError,
    DeviceTimeout,
)
from energy_pipeline.drivers.luxtronik import protocol


class Connection:
    """One controller's config port; `fetch` opens it, `close` releases it."""

    def __init__(self, device_id: str, host: str, port: int, timeout: float) -> None:
        self.device_id = device_id
        self.host = host
        self.port = port
        self.timeout = timeout
        self._writer: asyncio.StreamWriter | None = None
        self._step = "connect"
        """The step in progress, named in errors ("3004 header")."""

    async def fetch(self) -> list[np.ndarray]:
        """The raw item vectors of every read command, in `protocol.READ_COMMANDS` order."""
        self._step = "connect"
        try:
            async with asyncio.timeout(self.timeout):
                reader, self._writer = await asyncio.open_connection(self.host, self.port)
            return [
                await self._exchange(reader, self._writer, command)
                for command in protocol.READ_COMMANDS
            ]
        except TimeoutError:
            raise DeviceTimeout(
                self.device_id, f"no answer within {self.timeout:g} s", where=self._step
            ) from None
        except asyncio.IncompleteReadError as exc:
            raise DeviceProtocolError(
                self.device_id,
                f"connection closed mid-frame after {len(exc.partial)} of {exc.expected} bytes",
                where=self._step,
            ) from None
        except protocol.FrameError as exc:
            raise DeviceProtocolError(self.device_id, str(exc), where=self._step) from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise DeviceConnectionError(
                self.device_id, f"{self.host}:{self.port}: {reason}", where=self._step
            ) from None

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.close()
        try:
            async with asyncio.timeout(self.timeout):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            pass

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: int
    ) -> np.ndarray:
        self._step = f"{command} request"
        writer.write(protocol.request(command))
        async with asyncio.timeout(self.timeout):
            await writer.drain()
        self._step = f"{command} header"
        async with asyncio.timeout(self.timeout):
            head = await reader.readexactly(protocol.header_size(command))
        header = protocol.parse_header(command, head)
        self._step = f"{command} items"
        async with asyncio.timeout(self.timeout):
            body = await reader.readexactly(header.count * protocol.item_size(command))
        return protocol.parse_items(command, body, header.count)
