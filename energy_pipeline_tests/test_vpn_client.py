"""The management client against a stand-in management interface on loopback (a TCP server
speaking openvpn's protocol): password exchange, replies in order with notifications in
between, garbage ignored, and a hang-up failing what waits."""

from __future__ import annotations

import asyncio

import pytest

from energy_pipeline.ops.vpn import management as m
from energy_pipeline.ops.vpn.tunnel import ManagementClient, VpnError

PASSWORD = "mgmt-secret-42"


async def _interface(replies: dict[str, bytes], hang_up_on: str | None = None):
    """A management interface that asks for PASSWORD, then answers each command line."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ENTER PASSWORD:")
        if (await reader.readline()).decode().strip() != PASSWORD:
            writer.write(b"ERROR: bad password\r\n")
            await writer.drain()
            writer.close()
            return
        writer.write(b"SUCCESS: password is correct\r\n>INFO:OpenVPN Management Interface\r\n")
        while line := (await reader.readline()).decode().strip():
            if line == hang_up_on:
                break
            writer.write(replies.get(line, b"ERROR: unknown command\r\n"))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_commands_replies_and_notifications() -> None:
    replies = {
        "state on": b"SUCCESS: real-time state notification set to ON\r\n",
        "state": b">BYTECOUNT:1,2\r\n1,CONNECTED,SUCCESS,10.8.0.2,203.0.113.5,1194,,\r\n"
        b">STATE:2,RECONNECTING,ping-restart,,,,,\r\nEND\r\n",
        "status": b"OpenVPN STATISTICS\r\nnot,a,number\r\nTCP/UDP read bytes,10\r\n"
        b"TCP/UDP write bytes,20\r\nEND\r\nthis line is garbage\r\n",
    }

    async def run() -> None:
        server, port = await _interface(replies)
        async with server:
            client = await ManagementClient.connect(port, PASSWORD)
            assert await client.ok(m.STATE_ON) == "real-time state notification set to ON"
            state = await client.state()
            assert state == m.StateLine(1, "CONNECTED", "SUCCESS", "10.8.0.2", "203.0.113.5", 1194)
            assert await client.byte_totals() == (10, 20)
            with pytest.raises(VpnError, match="openvpn refused 'hold release'"):
                await client.ok(m.HOLD_RELEASE)
            notes = [client.notifications.get_nowait() for _ in range(3)]
            assert [n.kind for n in notes] == ["INFO", "BYTECOUNT", "STATE"]
            await client.close()

    asyncio.run(run())


def test_a_wrong_password_and_a_hang_up() -> None:
    async def run() -> None:
        server, port = await _interface({}, hang_up_on="state")
        async with server:
            with pytest.raises(VpnError, match="refused the management password") as err:
                await ManagementClient.connect(port, "wrong-password")
            assert "wrong-password" not in str(err.value)
            client = await ManagementClient.connect(port, PASSWORD)
            with pytest.raises(VpnError, match="closed the management connection"):
                await client.state()
            await asyncio.wait_for(client.closed.wait(), 2)
            with pytest.raises(VpnError):
                await client.ok(m.STATE_ON)
            await client.close()

    asyncio.run(run())


def test_nobody_listening_is_a_vpn_error() -> None:
    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(VpnError, match=f"management port {port} does not answer"):
            await ManagementClient.connect(port, PASSWORD, timeout=1)

    asyncio.run(run())
