"""The lean Modbus TCP client's frames: requests byte-for-byte as pymodbus builds them, replies
that pymodbus' server side builds read back to the same values, and arbitrary bytes raise only
the declared exceptions, at the pure level and through a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
)
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)

from energy_pipeline.drivers.base import DeviceError
from energy_pipeline.drivers.modbus import mbap
from energy_pipeline.drivers.modbus.client import TCP_CLIENT_ENV
from energy_pipeline.drivers.modbus.planner import request_limit
from energy_pipeline.drivers.registry import build_drivers
from energy_pipeline.lake.device_state import StateFiles
from energy_pipeline_tests.kit.sites import load_site
from energy_pipeline_tests.modbus_support import misbehaving_tcp_server

REQUESTS = {
    "coil": ReadCoilsRequest,
    "discrete": ReadDiscreteInputsRequest,
    "holding": ReadHoldingRegistersRequest,
    "input": ReadInputRegistersRequest,
}
REGISTER_REPLIES = {"holding": ReadHoldingRegistersResponse, "input": ReadInputRegistersResponse}
BIT_REPLIES = {"coil": ReadCoilsResponse, "discrete": ReadDiscreteInputsResponse}
transactions = st.integers(0, 0xFFFF)
units = st.integers(0, 255)


def parse(frame: bytes, register_type: str, count: int) -> tuple[int, int, list[int]]:
    found = mbap.split_frame(frame, 0)
    assert found is not None
    transaction, unit, end = found
    assert end == len(frame)
    function = mbap.FUNCTION[register_type]
    words = mbap.parse_read_reply(frame, mbap.HEADER_SIZE, end, function, count)
    return transaction, unit, words.tolist()


@given(st.sampled_from(list(REQUESTS)), transactions, units, st.integers(0, 0xFFFF), st.data())
def test_requests_are_the_bytes_pymodbus_sends(
    register_type: str, transaction: int, unit: int, start: int, data: st.DataObject
) -> None:
    count = data.draw(st.integers(1, request_limit(register_type)))
    theirs = REQUESTS[register_type](
        address=start, count=count, dev_id=unit, transaction_id=transaction
    )
    built = FramerSocket(DecodePDU(False)).buildFrame(theirs)
    assert mbap.read_request(transaction, unit, register_type, start, count) == built


@given(
    st.sampled_from(list(REGISTER_REPLIES)),
    transactions,
    units,
    st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
)
def test_register_replies_from_a_pymodbus_server_read_back(
    register_type: str, transaction: int, unit: int, words: list[int]
) -> None:
    reply = REGISTER_REPLIES[register_type](
        registers=words, dev_id=unit, transaction_id=transaction
    )
    frame = FramerSocket(DecodePDU(True)).buildFrame(reply)
    assert parse(frame, register_type, len(words)) == (transaction, unit, words)


@given(
    st.sampled_from(list(BIT_REPLIES)),
    transactions,
    units,
    st.lists(st.booleans(), min_size=1, max_size=2000),
)
def test_bit_replies_from_a_pymodbus_server_read_back(
    register_type: str, transaction: int, unit: int, bits: list[bool]
) -> None:
    reply = BIT_REPLIES[register_type](bits=bits, dev_id=unit, transaction_id=transaction)
    frame = FramerSocket(DecodePDU(True)).buildFrame(reply)
    assert parse(frame, register_type, len(bits)) == (transaction, unit, [int(b) for b in bits])


@given(st.binary(max_size=300), st.sampled_from([1, 2, 3, 4]), st.integers(1, 125))
def test_any_bytes_raise_only_the_declared_exceptions(
    data: bytes, function: int, count: int
) -> None:
    offset = 0
    with contextlib.suppress(mbap.FramingLost):
        while (frame := mbap.split_frame(data, offset)) is not None:
            _, _, end = frame
            assert offset + mbap.HEADER_SIZE < end <= len(data)
            with contextlib.suppress(mbap.ExceptionReply, mbap.BadReply):
                words = mbap.parse_read_reply(data, offset + mbap.HEADER_SIZE, end, function, count)
                assert len(words) <= (count if function <= 2 else 125)
            offset = end


def test_a_reply_of_another_read_function_is_not_taken() -> None:
    """pymodbus would return input registers as the holding registers asked for."""
    reply = ReadInputRegistersResponse(registers=[1, 2], dev_id=1, transaction_id=5)
    frame = FramerSocket(DecodePDU(True)).buildFrame(reply)
    with pytest.raises(mbap.BadReply, match="function 4 in reply to function 3"):
        parse(frame, "holding", 2)


@settings(max_examples=40, deadline=None)
@given(answer=st.one_of(st.binary(min_size=1, max_size=300), st.lists(st.binary(), max_size=4)))
def test_any_reply_bytes_end_a_poll_as_values_or_a_typed_error(answer: bytes | list[bytes]) -> None:
    """Whatever a peer sends (in one piece or several, hanging up where a piece is empty), the
    lean client ends the poll with a sample or a DeviceError; nothing else escapes."""
    with (
        misbehaving_tcp_server(lambda _request: answer) as port,
        tempfile.TemporaryDirectory() as tmp,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv(TCP_CLIENT_ENV, "lean")
        config = load_site(
            Path(tmp),
            "  - {id: any, driver: modbus, profile: must_ep20, connection: {transport: tcp,"
            f" host: 127.0.0.1, port: {port}, timeout: 0.1, retries: 0}}}}\n",
        )
        driver = build_drivers(config, state=StateFiles(config.data_dir))["any"]

        async def poll() -> None:
            with contextlib.suppress(DeviceError):
                await driver.read()
            await driver.close()

        asyncio.run(poll())
