"""Modbus TCP frames for the four reads: bytes in, bytes out, no I/O.

A frame is the MBAP header (transaction id, protocol id 0, length of what follows, unit id)
and a PDU. Only read requests can be built here (functions 1-4); there is no write function.
`tcp_link` does the socket side; `split_frame` and `parse_read_reply` are what it runs per
reply, so their checks decide which bytes count as a reply and which as garbage.
"""

from __future__ import annotations

import struct

import numpy as np

FUNCTION = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
HEADER = struct.Struct(">HHHB")
HEADER_SIZE = HEADER.size
MAX_LENGTH = 254
"""Largest MBAP length field: unit id plus a PDU of at most 253 bytes."""
_READ_REQUEST = struct.Struct(">HHHBBHH")


class FramingLost(Exception):
    """Bytes that cannot start a Modbus TCP frame: nothing after them can be trusted."""


class ExceptionReply(Exception):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int):
        self.code = code
        super().__init__(f"exception {code}")


class BadReply(Exception):
    """A frame that answers the request (same transaction and unit) but is not a valid reply."""


def read_request(transaction: int, unit: int, register_type: str, start: int, count: int) -> bytes:
    return _READ_REQUEST.pack(transaction, 0, 6, unit, FUNCTION[register_type], start, count)


def split_frame(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """(transaction, unit, end) of the frame at `offset`, None while it is incomplete.

    The PDU is data[offset + HEADER_SIZE:end]. Raises FramingLost for a header that no server
    sends (protocol id other than 0, a length no PDU has).
    """
    if len(data) - offset < HEADER_SIZE:
        return None
    transaction, protocol, length, unit = HEADER.unpack_from(data, offset)
    if protocol != 0 or not 2 < length <= MAX_LENGTH:
        raise FramingLost(f"not a Modbus TCP frame (protocol id {protocol}, length {length})")
    end = offset + 6 + length
    return (transaction, unit, end) if len(data) >= end else None


def parse_read_reply(data: bytes, start: int, end: int, function: int, count: int) -> np.ndarray:
    """Register words (uint16) or bits (0/1) of the PDU data[start:end] answering `function`.

    Raises ExceptionReply for an exception response and BadReply for anything else that is not
    a reply to `function`: stricter than pymodbus, which takes a reply of another read function
    as valid. A reply carrying fewer or more values than asked is returned as it is: the caller
    names the mismatch.
    """
    code = data[start]
    if code & 0x80:  # taken whatever function it names and however long, as pymodbus does
        raise ExceptionReply(data[start + 1])
    if code != function:
        raise BadReply(f"function {code} in reply to function {function}")
    size = data[start + 1]
    if size != end - start - 2:
        raise BadReply(f"byte count {size} but {end - start - 2} data bytes")
    if function >= 3:
        if size % 2:
            raise BadReply(f"odd byte count {size} for registers")
        return np.frombuffer(data, ">u2", size // 2, start + 2)
    bits = np.unpackbits(np.frombuffer(data, np.uint8, size, start + 2), bitorder="little")
    return bits[:count]
