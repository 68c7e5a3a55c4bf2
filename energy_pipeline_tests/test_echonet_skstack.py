"""The dongle stream parser: both ERXUDP dialects and data modes, garbage, truncation, fuzz."""

from __future__ import annotations

import itertools
import os
import time

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_pipeline.drivers.echonet import skstack as sk

METER_IP = "FE80:0000:0000:0000:021C:6400:6014:21A3"
DONGLE_IP = "FE80:0000:0000:0000:021D:1290:0005:747B"
E7_REPLY = bytes.fromhex("1081000102880105FF017201E70400000278")


class Bytes:
    """A byte source that has everything at once: the parser's unit-test stand-in for a port."""

    def __init__(self, data: bytes):
        self.data = bytearray(data)

    @property
    def in_waiting(self) -> int:
        return len(self.data)

    def read(self, size: int = 1) -> bytes:
        out = bytes(self.data[:size])
        del self.data[:size]
        return out

    def write(self, data: bytes) -> int:
        return len(data)


def messages(data: bytes) -> list[sk.Message]:
    ticks = itertools.count()
    wire = sk.Wire(Bytes(data), clock=lambda: float(next(ticks)))
    out: list[sk.Message] = []
    while True:
        try:
            out.append(wire.next(wire.clock() + 3))
        except sk.SkTimeout:
            return out


def erxudp(data: bytes, *, side: bool, binary: bool) -> bytes:
    head = f"ERXUDP {METER_IP} {DONGLE_IP} 0E1A 0E1A 001C6400601421A3 1{' 0' if side else ''} "
    body = data if binary else data.hex().upper().encode()
    return head.encode() + f"{len(data):04X} ".encode() + body + b"\r\n"


@pytest.mark.parametrize("side", [False, True], ids=["single-stack", "dual-stack"])
@pytest.mark.parametrize("binary", [False, True], ids=["hex", "binary"])
def test_erxudp_in_both_dialects_and_data_modes(side: bool, binary: bool) -> None:
    [msg] = messages(erxudp(E7_REPLY, side=side, binary=binary) + b"OK\r\n")[:1]
    assert isinstance(msg, sk.Datagram)
    assert msg.data == E7_REPLY
    assert msg.sender == METER_IP and msg.rport == 0x0E1A and msg.secured == 1
    assert msg.side == (0 if side else None)
    assert msg.binary is binary


def test_the_captured_single_stack_line_parses() -> None:
    line = (
        b"ERXUDP FE80:0000:0000:0000:021C:6400:6014:21A3 FE80:0000:0000:0000:021D:1290:0005:747B "
        b"0E1A 0E1A 001C6400601421A3 1 0012 1081000102880105FF017201E70400000278\r\n"
    )
    [msg] = messages(line)
    assert isinstance(msg, sk.Datagram) and msg.data == E7_REPLY


def test_binary_data_may_contain_crlf_and_spaces() -> None:
    data = b"\x10\x81\r\n \x20\r\nERXUDP"
    msgs = messages(erxudp(data, side=False, binary=True) + b"OK\r\n")
    assert isinstance(msgs[0], sk.Datagram) and msgs[0].data == data
    assert msgs[1] == "OK"


def test_lines_events_and_epandesc_fields_keep_their_indentation() -> None:
    msgs = messages(b"EVENT 20 " + METER_IP.encode() + b"\r\nEPANDESC\r\n  Channel:21\r\nOK\r\n")
    assert msgs == [sk.Event(0x20, (METER_IP,)), "EPANDESC", "  Channel:21", "OK"]
    assert sk.Event(0x21, (METER_IP, "0", "00")).param == "00"


def test_garbage_and_truncated_frames_are_reported_and_skipped() -> None:
    truncated = erxudp(E7_REPLY, side=False, binary=False)[:-10] + b"\r\n"
    msgs = messages(
        b"\x00\xff garbage\r\n"
        + truncated
        + b"ERXUDP nonsense fields here 1 0012 00\r\n"
        + b"EVENT zz\r\n"
        + erxudp(E7_REPLY, side=True, binary=False)
    )
    kinds = [type(msg).__name__ for msg in msgs]
    assert kinds == ["Garbled", "Garbled", "Garbled", "Garbled", "Datagram"]
    assert "truncated" in msgs[1].reason  # type: ignore[union-attr]


def test_an_endless_line_is_dropped_instead_of_growing_without_bound() -> None:
    msgs = messages(b"A" * (sk.MAX_LINE + 10) + b"\r\nOK\r\n")
    assert isinstance(msgs[0], sk.Garbled)
    assert msgs[-1] == "OK"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_byte_stream_parses_without_raising(data: bytes) -> None:
    for msg in messages(data):
        assert isinstance(msg, str | sk.Event | sk.Datagram | sk.Garbled)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.booleans(), st.booleans(), st.binary(max_size=40))
def test_datagrams_survive_noise_before_them(
    payload: bytes, side: bool, binary: bool, noise: bytes
) -> None:
    if binary and payload[:1] in {bytes((c,)) for c in b"0123456789ABCDEFabcdef"}:
        payload = b"\x10" + payload
    noise = noise.replace(b"\r\n", b"") + b"\r\n"
    msgs = messages(noise + erxudp(payload, side=side, binary=binary))
    assert isinstance(msgs[-1], sk.Datagram) and msgs[-1].data == payload


def test_link_local_address_flips_the_universal_bit() -> None:
    assert sk.link_local("001D129012345678") == "FE80:0000:0000:0000:021D:1290:1234:5678"


def test_a_closed_pty_is_a_disconnect_not_a_hang() -> None:
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), 115200, timeout=0.05)
    os.close(slave)
    wire = sk.Wire(port)
    os.write(master, b"OK\r\n")
    assert wire.next(time.monotonic() + 1) == "OK"
    os.close(master)
    with pytest.raises(sk.SkDisconnected):
        wire.next(time.monotonic() + 1)
    port.close()
