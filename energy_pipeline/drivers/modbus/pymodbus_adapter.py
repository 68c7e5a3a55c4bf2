"""Everything the Modbus room relies on in pymodbus, in one place, so an upgrade breaks here.

`PymodbusLink` puts a pymodbus client behind the lean `tcp_link` client's interface and
exceptions, so `Bus` treats both alike: serial ports use it, and TCP when
ENERGY_PIPELINE_MODBUS_TCP=pymodbus. `client` imports this module only then, so a TCP-only
collector never loads pymodbus (~5 MB per process).

Two needs have no public pymodbus API: changing a connected client's request timeout per
read (`ctx.comm_params.timeout_connect`) and failing the request in flight when the peer hangs
up (`ctx.response_future`, else the caller waits out its whole timeout). One behaviour is
relied on too: a reply for another unit or transaction is skipped, so the request ends as a
ModbusIOException like silence, and only the packet trace (bytes received) tells the two apart.
test_modbus_pymodbus_adapter.py checks all three against real clients of the pinned version.
The rest are the documented read calls, which only ever read.

Register replies are decoded by `LeanHoldingResponse`/`LeanInputResponse`, installed with the
public `client.register`: pymodbus' own classes unpack one word per `struct` call and its decoder
formats every reply with `str(pdu)` (all words) for a debug line that is never shown, which
together were ~15 % of the collector's CPU at 200 meters a second.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from energy_pipeline.drivers.modbus.mbap import BadReply, ExceptionReply
from energy_pipeline.drivers.modbus.tcp_link import NoReply

__all__ = [
    "Client",
    "ConnectionException",
    "ExceptionResponse",
    "LeanHoldingResponse",
    "LeanInputResponse",
    "ModbusException",
    "ModbusIOException",
    "PymodbusLink",
    "fail_pending",
    "read_values",
    "rtu_client",
    "rtu_link",
    "set_request_timeout",
    "tcp_client",
    "tcp_link",
]

# pymodbus logs every timeout and refused connect at ERROR; the driver reports each as a typed
# error instead, and the collector logs state changes once.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

Client = AsyncModbusTcpClient | AsyncModbusSerialClient
PacketTrace = Callable[[bool, bytes], bytes]
"""Called with (sending, data) for every packet; returns the data unchanged."""
ConnectionTrace = Callable[[bool], None]
"""Called with True on connect and False when the connection is lost."""


ExceptionResponse = ExceptionReply
"""The device answered with a Modbus exception response (the lean client's own class)."""


class LeanHoldingResponse(ReadHoldingRegistersResponse):
    """FC3 reply: all words in one unpack, and a short text that does not list them."""

    def decode(self, data: bytes) -> None:
        if (data_len := int(data[0])) >= len(data):
            raise ModbusIOException(
                f"byte_count {data_len} > length of packet {len(data)}",
                function_code=self.function_code,
            )
        self.registers = list(struct.unpack_from(f">{data_len // 2}H", data, 1))

    def __str__(self) -> str:
        return (
            f"{type(self).__name__}(dev_id={self.dev_id}, "
            f"transaction_id={self.transaction_id}, {len(self.registers)} registers)"
        )


class LeanInputResponse(LeanHoldingResponse):
    """FC4 reply, decoded like FC3."""

    function_code = ReadInputRegistersResponse.function_code


def _lean(client: Client) -> Client:
    client.register(LeanHoldingResponse)
    client.register(LeanInputResponse)
    return client


def tcp_client(
    host: str, port: int, *, timeout: float, packets: PacketTrace, connection: ConnectionTrace
) -> Client:
    """A client that never retries or reconnects on its own: the driver decides both."""
    return _lean(
        AsyncModbusTcpClient(
            host,
            port=port,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
            trace_packet=packets,
            trace_connect=connection,
        )
    )


def rtu_client(
    port: str,
    *,
    baudrate: int,
    bytesize: int,
    parity: str,
    stopbits: int,
    timeout: float,
    packets: PacketTrace,
    connection: ConnectionTrace,
) -> Client:
    return _lean(
        AsyncModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
            trace_packet=packets,
            trace_connect=connection,
        )
    )


def set_request_timeout(client: Client, timeout: float) -> None:
    """The reply timeout of the next requests (devices sharing one client differ)."""
    client.ctx.comm_params.timeout_connect = timeout


def fail_pending(client: Client, reason: str) -> None:
    """Fail the request waiting for a reply now, with ConnectionException(reason)."""
    pending = client.ctx.response_future
    if isinstance(pending, asyncio.Future) and not pending.done():
        pending.set_exception(ConnectionException(reason))


async def read_values(
    client: Client, register_type: str, start: int, count: int, unit_id: int
) -> list[int]:
    """The words (registers) or 0/1 (coils, discrete inputs) one reply carries.

    Raises ExceptionResponse for an exception reply, pymodbus exceptions otherwise.
    """
    if register_type == "holding":
        call = client.read_holding_registers
    elif register_type == "input":
        call = client.read_input_registers
    elif register_type == "coil":
        call = client.read_coils
    else:
        call = client.read_discrete_inputs
    reply = await call(start, count=count, device_id=unit_id)
    if reply.isError():
        raise ExceptionResponse(int(getattr(reply, "exception_code", 0) or 0))
    if register_type in ("holding", "input"):
        return list(reply.registers)
    return [1 if b else 0 for b in reply.bits[:count]]


class PymodbusLink:
    """A pymodbus client that raises what `TcpLink` raises: ExceptionReply, NoReply (with the
    bytes received), BadReply, ConnectionError."""

    def __init__(self, make: Callable[[PacketTrace, ConnectionTrace], Client]):
        self.received = 0
        self._client = make(self._trace, self._connection_changed)

    @property
    def connected(self) -> bool:
        return self._client.connected

    async def connect(self) -> bool:
        try:
            return await self._client.connect()
        except ModbusException as exc:
            raise ConnectionError(str(exc)) from None

    def close(self) -> None:
        self._client.close()

    async def read(
        self, register_type: str, start: int, count: int, unit: int, timeout: float
    ) -> list[int]:
        set_request_timeout(self._client, timeout)
        self.received = 0
        try:
            return await read_values(self._client, register_type, start, count, unit)
        except ModbusIOException:
            raise NoReply(self.received) from None
        except ConnectionException as exc:
            raise ConnectionError(str(exc)) from None
        except ModbusException as exc:
            raise BadReply(str(exc)) from None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self.received += len(data)
        return data

    def _connection_changed(self, connected: bool) -> None:
        """A peer hanging up fails the pending request now, not after its whole timeout."""
        if not connected:
            fail_pending(self._client, "closed by the peer")


def tcp_link(host: str, port: int, *, timeout: float) -> PymodbusLink:
    return PymodbusLink(
        lambda packets, connection: tcp_client(
            host, port, timeout=timeout, packets=packets, connection=connection
        )
    )


def rtu_link(
    port: str, *, baudrate: int, bytesize: int, parity: str, stopbits: int, timeout: float
) -> PymodbusLink:
    return PymodbusLink(
        lambda packets, connection: rtu_client(
            port,
            baudrate=baudrate,
            bytesize=bytesize,
            parity=parity,
            stopbits=stopbits,
            timeout=timeout,
            packets=packets,
            connection=connection,
        )
    )
