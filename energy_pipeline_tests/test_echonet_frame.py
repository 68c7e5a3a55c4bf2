"""The ECHONET Lite codec against PROTOCOLS.md's worked frames, and fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy_pipeline.drivers.echonet import frame as el

CAPTURED_GET_RES = bytes.fromhex(
    "108106E102880105FF017206800130880142E70400000698E80400A00028E0040004F3FDE3040000000B"
)


def test_get_request_matches_the_worked_frames() -> None:
    assert el.get_request(1, (0xE7,)) == bytes.fromhex("1081000105FF0102880162 01E700")
    assert el.get_request(2, (0xE7, 0xE8, 0xE0)) == bytes.fromhex(
        "1081000205FF010288016203E700E800E000"
    )


def test_decodes_the_captured_multi_property_reply() -> None:
    frame = el.decode(CAPTURED_GET_RES)
    assert frame.tid == 0x06E1
    assert frame.seoj == el.SMART_METER and frame.deoj == el.CONTROLLER
    assert frame.esv == el.ESV.GET_RES
    assert [epc for epc, _ in frame.props] == [0x80, 0x88, 0xE7, 0xE8, 0xE0, 0xE3]
    assert frame.prop(0xE7) == bytes.fromhex("00000698")
    assert frame.prop(0x9F) is None
    assert el.is_reply_to(frame, 0x06E1)
    assert not el.is_reply_to(frame, 0x06E2)


def test_decodes_get_sna_and_node_profile_inf() -> None:
    sna = el.decode(bytes.fromhex("1081000102880105FF0152018300"))
    assert sna.esv == el.ESV.GET_SNA and sna.props == ((0x83, b""),)
    inf = el.decode(bytes.fromhex("108100000EF0010EF0017301D50401028801"))
    assert inf.esv == el.ESV.INF and inf.seoj == el.NODE_PROFILE
    assert not el.is_reply_to(inf, 0)


def test_set_history_day_is_the_only_write_and_is_bounded() -> None:
    frame = el.decode(el.set_history_day(7, 1))
    assert frame.esv == el.ESV.SETC and frame.props == ((0xE5, b"\x01"),)
    with pytest.raises(el.FrameError):
        el.set_history_day(7, 100)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "at least 12"),
        (bytes.fromhex("1181000102880105FF017201E70400000278"), "EHD1"),
        (bytes.fromhex("1082000102880105FF017201E70400000278"), "format 1"),
        (bytes.fromhex("1081000102880105FF017200"), "OPC 0"),
        (bytes.fromhex("1081000102880105FF017201E704000002"), "past the frame end"),
        (bytes.fromhex("1081000102880105FF017202E70400000278"), "truncated at property 2"),
        (bytes.fromhex("1081000102880105FF017201E7040000027800"), "after the last property"),
    ],
)
def test_malformed_frames_raise_a_typed_error(data: bytes, message: str) -> None:
    with pytest.raises(el.FrameError, match=message):
        el.decode(data)


def test_every_truncation_of_a_valid_frame_is_rejected() -> None:
    for cut in range(len(CAPTURED_GET_RES)):
        with pytest.raises(el.FrameError):
            el.decode(CAPTURED_GET_RES[:cut])


@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_frame_or_a_frame_error(data: bytes) -> None:
    try:
        frame = el.decode(data)
    except el.FrameError:
        return
    assert el.encode(frame) == data


frames = st.builds(
    el.Frame,
    tid=st.integers(0, 0xFFFF),
    seoj=st.integers(0, 0xFFFFFF),
    deoj=st.integers(0, 0xFFFFFF),
    esv=st.integers(0, 0xFF),
    props=st.lists(
        st.tuples(st.integers(0, 0xFF), st.binary(max_size=40)), min_size=1, max_size=20
    ).map(tuple),
)


@given(frames)
def test_encode_then_decode_is_identity(frame: el.Frame) -> None:
    assert el.decode(el.encode(frame)) == frame


@given(st.frozensets(st.integers(0x80, 0xFF), min_size=1))
def test_property_map_round_trips_in_list_and_bitmap_forms(epcs: frozenset[int]) -> None:
    assert el.property_map(el.encode_property_map(epcs)) == epcs


def test_property_map_rejects_inconsistent_lengths() -> None:
    with pytest.raises(el.FrameError):
        el.property_map(bytes((3, 0x80, 0xE7)))
    with pytest.raises(el.FrameError):
        el.property_map(bytes((20,)) + bytes(10))
