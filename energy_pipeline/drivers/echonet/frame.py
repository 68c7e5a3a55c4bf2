"""ECHONET Lite format-1 frames: encode the few requests we send, decode anything we receive.

Pure bytes in, bytes or typed values out, no I/O. `decode` turns any byte string into a `Frame`
or raises `FrameError`; it never raises anything else, so a garbled radio packet can not crash
the session that received it.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

EHD1 = 0x10
EHD2_FORMAT1 = 0x81
HEADER_LEN = 12
MAX_FRAME_LEN = 0x04D0

CONTROLLER = 0x05FF01
SMART_METER = 0x028801
NODE_PROFILE = 0x0EF001

EPC_HISTORY_DAY = 0xE5


class ESV(IntEnum):
    SETI = 0x60
    SETC = 0x61
    GET = 0x62
    INF_REQ = 0x63
    SETGET = 0x6E
    SET_RES = 0x71
    GET_RES = 0x72
    INF = 0x73
    INFC = 0x74
    INFC_RES = 0x7A
    SETGET_RES = 0x7E
    SETI_SNA = 0x50
    SETC_SNA = 0x51
    GET_SNA = 0x52
    INF_SNA = 0x53
    SETGET_SNA = 0x5E


class FrameError(ValueError):
    """Bytes that are not a well-formed ECHONET Lite format-1 frame."""


class Frame(NamedTuple):
    """One frame. A NamedTuple: immutable and about four times cheaper to build than a frozen
    dataclass, which matters at tens of thousands of frames a second."""

    tid: int
    seoj: int
    deoj: int
    esv: int
    props: tuple[tuple[int, bytes], ...]

    def prop(self, epc: int) -> bytes | None:
        for code, edt in self.props:
            if code == epc:
                return edt
        return None

    def as_dict(self) -> dict[int, bytes]:
        return dict(self.props)


_HEAD = struct.Struct(">BBH3s3sBB")


def _eoj(value: int) -> bytes:
    return value.to_bytes(3, "big")


def encode(frame: Frame) -> bytes:
    """Serialize a frame; the inverse of `decode` for every frame `decode` accepts."""
    if not 0 <= frame.tid <= 0xFFFF:
        raise FrameError(f"TID {frame.tid} out of range 0..65535")
    if not 1 <= len(frame.props) <= 255:
        raise FrameError(f"{len(frame.props)} properties; a frame carries 1..255")
    body = bytearray(
        _HEAD.pack(
            EHD1,
            EHD2_FORMAT1,
            frame.tid,
            _eoj(frame.seoj),
            _eoj(frame.deoj),
            frame.esv,
            len(frame.props),
        )
    )
    for epc, edt in frame.props:
        if len(edt) > 255:
            raise FrameError(f"EPC {epc:02X}: {len(edt)} data bytes; at most 255")
        body += bytes((epc, len(edt))) + edt
    if len(body) > MAX_FRAME_LEN:
        raise FrameError(f"frame of {len(body)} bytes exceeds the dongle's {MAX_FRAME_LEN}")
    return bytes(body)


def decode(data: bytes) -> Frame:
    """Parse one frame. Trailing bytes are an error: a UDP datagram holds exactly one frame."""
    data = bytes(data)
    size = len(data)
    if size < HEADER_LEN:
        raise FrameError(f"{size} bytes; an ECHONET Lite frame has at least {HEADER_LEN}")
    if data[0] != EHD1:
        raise FrameError(f"EHD1 {data[0]:02X}; expected 10")
    if data[1] != EHD2_FORMAT1:
        raise FrameError(f"EHD2 {data[1]:02X}; only format 1 (81) is supported")
    opc = data[11]
    if opc == 0:
        raise FrameError("OPC 0; a frame carries at least one property")
    props = []
    pos = HEADER_LEN
    for i in range(opc):
        if pos + 2 > size:
            raise FrameError(f"truncated at property {i + 1} of {opc} (offset {pos})")
        end = pos + 2 + data[pos + 1]
        if end > size:
            raise FrameError(f"EPC {data[pos]:02X}: PDC {data[pos + 1]} runs past the frame end")
        props.append((data[pos], data[pos + 2 : end]))
        pos = end
    if pos != size:
        raise FrameError(f"{size - pos} bytes after the last property")
    return Frame(
        (data[2] << 8) | data[3],
        int.from_bytes(data[4:7], "big"),
        int.from_bytes(data[7:10], "big"),
        data[10],
        tuple(props),
    )


def get_request(tid: int, epcs: tuple[int, ...], deoj: int = SMART_METER) -> bytes:
    """A Get (0x62) from the controller object: every EPC with PDC 0."""
    return encode(Frame(tid, CONTROLLER, deoj, ESV.GET, tuple((epc, b"") for epc in epcs)))


def set_history_day(tid: int, day: int) -> bytes:
    """SetC of E5, the only write the driver ever makes: which day history 1 (E2) returns."""
    if not 0 <= day <= 99:
        raise FrameError(f"history day {day}; expected 0..99")
    return encode(
        Frame(tid, CONTROLLER, SMART_METER, ESV.SETC, ((EPC_HISTORY_DAY, bytes((day,))),))
    )


def is_reply_to(frame: Frame, tid: int) -> bool:
    """A unicast answer from the meter object to our controller object with our TID."""
    return frame.tid == tid and frame.seoj == SMART_METER and frame.deoj == CONTROLLER


def property_map(edt: bytes) -> frozenset[int]:
    """Decode a property map (9D/9E/9F): a list when fewer than 16, else a 16-byte bitmap.

    In the bitmap, byte i bit b (LSB first) stands for EPC 0x80 + (b << 4) + i.
    """
    if not edt:
        raise FrameError("empty property map")
    count = edt[0]
    if count < 16:
        if len(edt) != 1 + count:
            raise FrameError(f"property map lists {count} EPCs in {len(edt) - 1} bytes")
        return frozenset(edt[1:])
    if len(edt) != 17:
        raise FrameError(f"property map of {count} EPCs needs a 16-byte bitmap, got {len(edt) - 1}")
    return frozenset(
        0x80 + (bit << 4) + i for i in range(16) for bit in range(8) if edt[1 + i] >> bit & 1
    )


def encode_property_map(epcs: frozenset[int] | set[int]) -> bytes:
    """The inverse of `property_map` (used by the simulator)."""
    codes = sorted(epcs)
    if len(codes) < 16:
        return bytes((len(codes), *codes))
    bitmap = bytearray(16)
    for epc in codes:
        low, high = epc & 0x0F, (epc >> 4) - 8
        bitmap[low] |= 1 << high
    return bytes((len(codes),)) + bytes(bitmap)
