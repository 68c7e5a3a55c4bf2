"""The Luxtronik frame codec: exact layouts, strict validation, and fuzzing (any bytes give a
frame or a FrameError, never another exception)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_pipeline.drivers.luxtronik import protocol
from energy_pipeline.drivers.luxtronik.protocol import FrameError

commands = st.sampled_from(protocol.READ_COMMANDS)


def test_requests_are_the_documented_bytes() -> None:
    assert protocol.request(3003).hex(" ") == "00 00 0b bb 00 00 00 00"
    assert protocol.request(3004).hex(" ") == "00 00 0b bc 00 00 00 00"
    assert protocol.request(3005).hex(" ") == "00 00 0b bd 00 00 00 00"


def test_the_write_command_has_no_encoder() -> None:
    with pytest.raises(ValueError, match="not a Luxtronik read command"):
        protocol.request(3002)


def test_calculations_carry_a_status_word_and_visibilities_are_bytes() -> None:
    calc = struct.pack(">iiiii", 3004, 7, 2, 215, -35)
    frame = protocol.parse_response(3004, calc)
    assert (frame.status, frame.items.tolist()) == (7, [215, -35])
    vis = struct.pack(">ii", 3005, 3) + bytes([1, 0, 0xFF])
    assert protocol.parse_response(3005, vis).items.tolist() == [1, 0, -1]
    params = struct.pack(">iii", 3003, 1, 500)
    assert protocol.parse_response(3003, params).items.tolist() == [500]


def test_wrong_echo_is_rejected_naming_both_commands() -> None:
    with pytest.raises(FrameError, match="echoes command 3004, expected 3003"):
        protocol.parse_header(3003, struct.pack(">ii", 3004, 1))


@pytest.mark.parametrize("count", [-1, protocol.MAX_COUNT + 1, 2**31 - 1])
def test_counts_outside_the_sanity_bound_are_rejected_before_reading_items(count: int) -> None:
    with pytest.raises(FrameError, match="announces"):
        protocol.parse_header(3003, struct.pack(">ii", 3003, count))


def test_missing_and_trailing_bytes_are_errors() -> None:
    good = protocol.encode_response(3003, np.arange(4))
    with pytest.raises(FrameError, match="expected 4 items"):
        protocol.parse_response(3003, good[:-1])
    with pytest.raises(FrameError, match="expected 4 items"):
        protocol.parse_response(3003, good + b"\x00")
    with pytest.raises(FrameError, match="shorter than its header"):
        protocol.parse_response(3004, good[:5])


def test_encoder_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="must fit"):
        protocol.encode_response(3005, np.array([200]))


@pytest.mark.slow
@given(commands, st.binary(max_size=2048))
@settings(max_examples=400, deadline=None)
def test_any_bytes_parse_to_a_frame_or_a_frame_error(command: int, data: bytes) -> None:
    try:
        frame = protocol.parse_response(command, data)
    except FrameError:
        return
    assert frame.command == command
    assert len(data) == protocol.header_size(command) + frame.items.nbytes


@given(commands, st.binary(min_size=0, max_size=16))
def test_any_header_bytes_give_a_header_or_a_frame_error(command: int, data: bytes) -> None:
    try:
        header = protocol.parse_header(command, data)
    except FrameError:
        return
    assert header.command == command
    assert 0 <= header.count <= protocol.MAX_COUNT


@given(commands, st.integers(0, 40), st.binary(max_size=64))
def test_valid_header_with_any_item_bytes(command: int, count: int, tail: bytes) -> None:
    fields = (command, 0, count) if command == 3004 else (command, count)
    data = struct.pack(f">{len(fields)}i", *fields) + tail
    try:
        frame = protocol.parse_response(command, data)
    except FrameError:
        assert len(tail) != count * protocol.item_size(command)
        return
    assert len(frame.items) == count


@given(
    commands,
    st.lists(st.integers(-128, 127), max_size=300),
    st.integers(-(2**31), 2**31 - 1),
)
def test_encode_then_parse_round_trips(command: int, items: list[int], status: int) -> None:
    data = protocol.encode_response(command, np.array(items, dtype=np.int64), status=status)
    frame = protocol.parse_response(command, data)
    assert frame.items.tolist() == items
    assert frame.status == (status if command == 3004 else 0)
