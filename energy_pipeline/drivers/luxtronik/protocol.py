"""The Luxtronik 2.x config-interface frames (TCP 8889), as a pure codec without I/O.

Read requests are two big-endian int32 (`command, 0`). Replies echo the command; 3004 then
carries a status word; then a count N and N items: int32 for parameters (3003) and
calculations (3004), one signed byte each for visibilities (3005). The write command 3002 has
no encoder here on purpose: this project only reads devices.

The client reads a reply in two exact-length steps (header, then N items), so the codec offers
those steps separately as well as a whole-frame parse. Every step validates what it can: the
echoed command, a count within `MAX_COUNT` (garbage must never make us wait for or allocate
gigabytes), the exact number of bytes. Anything else raises `FrameError`, which the client turns
into the typed `DeviceProtocolError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

READ_PARAMETERS = 3003
READ_CALCULATIONS = 3004
READ_VISIBILITIES = 3005
READ_COMMANDS = (READ_PARAMETERS, READ_CALCULATIONS, READ_VISIBILITIES)

MAX_COUNT = 16_384
"""Largest vector accepted. Real controllers send ~1,200 parameters, ~260 calculations and
~360 visibilities; this leaves room for firmware growth and caps a bogus count at 64 KiB."""

_ITEM_DTYPE = {
    READ_PARAMETERS: np.dtype(">i4"),
    READ_CALCULATIONS: np.dtype(">i4"),
    READ_VISIBILITIES: np.dtype("i1"),
}
_HEADER = {
    READ_PARAMETERS: struct.Struct(">ii"),
    READ_CALCULATIONS: struct.Struct(">iii"),
    READ_VISIBILITIES: struct.Struct(">ii"),
}
_REQUESTS = {cmd: struct.pack(">ii", cmd, 0) for cmd in READ_COMMANDS}


class FrameError(ValueError):
    """A reply that is not a valid frame for the command sent."""


@dataclass(frozen=True, slots=True)
class Header:
    command: int
    status: int
    count: int


@dataclass(frozen=True, slots=True)
class Frame:
    command: int
    status: int
    items: np.ndarray


def _check_command(command: int) -> None:
    if command not in _HEADER:
        raise ValueError(f"{command} is not a Luxtronik read command (3003, 3004, 3005)")


def request(command: int) -> bytes:
    """The 8-byte request of a read command."""
    _check_command(command)
    return _REQUESTS[command]


def header_size(command: int) -> int:
    _check_command(command)
    return _HEADER[command].size


def item_size(command: int) -> int:
    _check_command(command)
    return _ITEM_DTYPE[command].itemsize


def parse_header(command: int, data: bytes) -> Header:
    """Validate the echo and the count of a reply's header (exactly `header_size` bytes)."""
    _check_command(command)
    layout = _HEADER[command]
    if len(data) != layout.size:
        raise FrameError(f"{command} header: expected {layout.size} bytes, got {len(data)}")
    fields = layout.unpack(data)
    echo, count = fields[0], fields[-1]
    status = fields[1] if len(fields) == 3 else 0
    if echo != command:
        raise FrameError(f"reply echoes command {echo}, expected {command}")
    if not 0 <= count <= MAX_COUNT:
        raise FrameError(f"{command} reply announces {count} items, expected 0..{MAX_COUNT}")
    return Header(command, status, count)


def parse_items(command: int, data: bytes, count: int) -> np.ndarray:
    """The N items after a header, as a read-only numpy view (no per-item Python work)."""
    _check_command(command)
    dtype = _ITEM_DTYPE[command]
    if len(data) != count * dtype.itemsize:
        raise FrameError(
            f"{command} reply: expected {count} items ({count * dtype.itemsize} bytes), "
            f"got {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=dtype)


def parse_response(command: int, data: bytes) -> Frame:
    """A whole reply, which must be exactly one frame: nothing missing, nothing trailing."""
    size = header_size(command)
    if len(data) < size:
        raise FrameError(f"{command} reply: {len(data)} bytes is shorter than its header")
    header = parse_header(command, data[:size])
    return Frame(command, header.status, parse_items(command, data[size:], header.count))


def encode_response(command: int, items: np.ndarray, status: int = 0) -> bytes:
    """The reply a controller sends (for the simulator); items must fit the command's type."""
    _check_command(command)
    dtype = _ITEM_DTYPE[command]
    values = np.asarray(items)
    if values.ndim != 1 or len(values) > MAX_COUNT:
        raise ValueError(f"expected at most {MAX_COUNT} items in one vector")
    info = np.iinfo(dtype)
    if len(values) and (values.min() < info.min or values.max() > info.max):
        raise ValueError(f"{command} items must fit {dtype}")
    if command == READ_CALCULATIONS:
        fields: tuple[int, ...] = (command, status, len(values))
    else:
        fields = (command, len(values))
    return _HEADER[command].pack(*fields) + values.astype(dtype).tobytes()
