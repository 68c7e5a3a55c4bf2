"""The pinned pymodbus still has what `pymodbus_adapter` relies on; an upgrade that changes any
of it fails here, by name, instead of as a slow timeout or a wrong error kind in the driver.

Real clients made by the adapter, talking to a real pymodbus server or to a raw TCP peer that
answers with chosen bytes.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy_pipeline.drivers.modbus import pymodbus_adapter as pm
from energy_pipeline.profiles import load_profile
from energy_pipeline_tests.modbus_support import (
    misbehaving_tcp_server,
    sample_values,
    simdevice,
    tcp_server,
)

PROFILES = Path(__file__).resolve().parent.parent / "energy_pipeline" / "profiles"
UNIT = 10


async def connected(port: int, timeout: float = 1.0) -> pm.Client:
    client = pm.tcp_client(
        "127.0.0.1", port, timeout=timeout, packets=lambda _s, d: d, connection=lambda _c: None
    )
    assert await client.connect()
    return client


def holding_reply(request: bytes, *, unit_delta: int = 0, tid_delta: int = 0) -> bytes:
    """A well-formed read-holding reply to `request`, for another unit or transaction."""
    tid, _, _, unit, fc, _, count = struct.unpack(">HHHBBHH", request[:12])
    assert fc == 3
    body = bytes([fc, 2 * count]) + bytes(2 * count)
    return struct.pack(">HHHB", tid + tid_delta, 0, len(body) + 1, unit + unit_delta) + body


def test_the_internals_exist_with_their_types_on_a_connected_client() -> None:
    prof = load_profile("must_ep20", PROFILES)
    with tcp_server([simdevice(prof, sample_values(prof), UNIT)]) as port:

        async def go() -> None:
            client = await connected(port)
            try:
                params = client.ctx.comm_params
                assert isinstance(params.timeout_connect, float)
                pm.set_request_timeout(client, 0.75)
                assert client.ctx.comm_params.timeout_connect == 0.75
                assert isinstance(client.ctx.response_future, asyncio.Future)
                first = min(p.address for p in prof.points if p.register_type == "holding")
                words = await pm.read_values(client, "holding", first, 2, UNIT)
                assert len(words) == 2 and all(isinstance(w, int) for w in words)
                with pytest.raises(pm.ExceptionResponse) as info:
                    await pm.read_values(client, "holding", 1, 1, UNIT)
                assert info.value.code == 2
            finally:
                client.close()

        asyncio.run(go())


def test_failing_the_pending_request_ends_the_wait_at_once() -> None:
    asked = threading.Event()

    def mute(request: bytes) -> None:
        asked.set()

    with misbehaving_tcp_server(mute) as port:

        async def go() -> BaseException:
            client = await connected(port, timeout=30.0)
            try:
                read = asyncio.create_task(pm.read_values(client, "holding", 0, 1, UNIT))
                assert await asyncio.to_thread(asked.wait, 5)
                pm.fail_pending(client, "closed by the peer")
                done, _ = await asyncio.wait({read}, timeout=5)
                assert done, "fail_pending did not reach the request in flight"
                exc = read.exception()
                assert exc is not None
                return exc
            finally:
                client.close()

        exc = asyncio.run(go())
    assert isinstance(exc, pm.ConnectionException) and "closed by the peer" in str(exc)


@pytest.mark.parametrize(
    ("answer", "replied"),
    [
        (lambda r: holding_reply(r, unit_delta=1), True),
        (lambda r: holding_reply(r, tid_delta=1), True),
        (lambda r: None, False),
    ],
    ids=["another unit", "another transaction", "silence"],
)
def test_a_foreign_reply_ends_like_silence_but_shows_in_the_packet_trace(
    answer: Callable[[bytes], bytes | None], replied: bool
) -> None:
    received: list[bytes] = []

    def trace(sending: bool, data: bytes) -> bytes:
        if not sending:
            received.append(data)
        return data

    with misbehaving_tcp_server(answer) as port:

        async def go() -> None:
            client = pm.tcp_client(
                "127.0.0.1", port, timeout=0.3, packets=trace, connection=lambda _c: None
            )
            assert await client.connect()
            try:
                with pytest.raises(pm.ModbusIOException):
                    await pm.read_values(client, "holding", 0, 2, UNIT)
            finally:
                client.close()

        asyncio.run(go())
    assert bool(received) is replied


@given(st.binary(min_size=1, max_size=260), st.sampled_from([3, 4]))
def test_lean_register_replies_decode_exactly_like_pymodbus(data: bytes, fc: int) -> None:
    from pymodbus.pdu.register_message import (
        ReadHoldingRegistersResponse,
        ReadInputRegistersResponse,
    )

    theirs = (ReadHoldingRegistersResponse if fc == 3 else ReadInputRegistersResponse)()
    ours = (pm.LeanHoldingResponse if fc == 3 else pm.LeanInputResponse)()
    assert ours.function_code == fc
    outcomes = []
    for pdu in (theirs, ours):
        try:
            pdu.decode(data)
            outcomes.append(pdu.registers)
        except Exception as exc:  # the same exception type is part of the contract
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]
    if isinstance(outcomes[1], list) and len(outcomes[1]) > 1:
        assert str(outcomes[1]) not in str(ours)


def test_a_client_decodes_register_replies_with_the_lean_classes() -> None:
    prof = load_profile("must_ep20", PROFILES)
    with tcp_server([simdevice(prof, sample_values(prof), UNIT)]) as port:

        async def go() -> type:
            client = await connected(port)
            try:
                first = min(p.address for p in prof.points if p.register_type == "holding")
                reply = await client.read_holding_registers(first, count=2, device_id=UNIT)
                return type(reply)
            finally:
                client.close()

        assert asyncio.run(go()) is pm.LeanHoldingResponse
