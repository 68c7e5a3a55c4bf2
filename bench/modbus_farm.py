"""A light Modbus TCP farm for load tests: N devices on N consecutive ports, one process.

`pymodbus`'s server costs about 0.4 ms of CPU per request here, so 1,000 pymodbus servers would
measure the simulator, not the collector. This farm answers FC3/FC4 reads from one register
image (65,536 words, refreshed every second from the Janitza model values, encoded with the
driver's own codec) with plain asyncio protocols: ~20 us per request. The collector under test
still talks to it through the real driver and the real pymodbus client over real sockets, one
connection per device. Every device serves the same image (values are not per device).
`--reply-ms` delays each answer like a real device's response time (timer, no CPU).

Run: python bench/modbus_farm.py --base-port P --count N   (prints "ready" when listening)
SIGUSR1 makes it print "requests N": the requests answered so far, over all its devices.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
import sys
import time
from datetime import UTC, datetime

import numpy as np

_REQ = struct.Struct(">HHHBBHH")


def janitza_image() -> tuple[bytearray, object]:
    from energy_pipeline.drivers.modbus.codec import encode_point
    from energy_pipeline.profiles import load_profile

    profile = load_profile("janitza_umg509pro", __import__("pathlib").Path("."))
    words = np.zeros(65536, dtype=">u2")

    def fill(values: dict[str, float]) -> None:
        for point in profile.points:
            if point.name in values:
                regs = encode_point(values[point.name], point)
                words[point.address : point.address + len(regs)] = regs
        for address in range(0, 1800):  # a Luxtronik-sized block of int16 values
            words[address] = (address * 7 + int(time.time())) % 1000

    def values_now() -> dict[str, float]:
        try:
            from energy_pipeline.config import Config
            from energy_pipeline.simulators import device_model

            cfg = Config.model_validate(
                {
                    "devices": [
                        {
                            "id": "umg",
                            "driver": "modbus",
                            "profile": "janitza_umg509pro",
                            "connection": {"transport": "tcp", "host": "127.0.0.1"},
                        }
                    ]
                }
            )
            model = device_model(cfg.devices[0], cfg)
            return lambda: model.values_at(datetime.now(UTC))  # type: ignore[return-value]
        except Exception:
            return lambda: {p.name: 100.0 + i for i, p in enumerate(profile.points)}  # type: ignore[return-value]

    source = values_now()
    image = bytearray(words.tobytes())

    def refresh() -> None:
        fill(source())  # type: ignore[operator]
        image[:] = words.tobytes()

    refresh()
    return image, refresh


class FarmProtocol(asyncio.Protocol):
    image: bytearray = bytearray()
    reply_delay = 0.0
    requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        while len(self.buffer) >= 12:
            tid, pid, length, unit, fc, addr, count = _REQ.unpack_from(self.buffer, 0)
            frame_len = 6 + length
            if len(self.buffer) < frame_len:
                break
            self.buffer = self.buffer[frame_len:]
            FarmProtocol.requests += 1
            if fc in (3, 4) and 1 <= count <= 125 and addr + count <= 65536:
                payload = bytes(FarmProtocol.image[addr * 2 : (addr + count) * 2])
                pdu = bytes((fc, len(payload))) + payload
            else:
                pdu = bytes((fc | 0x80, 2))
            out.append(struct.pack(">HHHB", tid, pid, len(pdu) + 1, unit) + pdu)
        if out:
            reply = b"".join(out)
            if FarmProtocol.reply_delay:
                loop = asyncio.get_running_loop()
                loop.call_later(FarmProtocol.reply_delay, self._send, reply)
            else:
                self._send(reply)

    def _send(self, reply: bytes) -> None:
        if not self.transport.is_closing():  # type: ignore[attr-defined]
            self.transport.write(reply)  # type: ignore[attr-defined]


async def serve(base_port: int, count: int, reply_ms: float) -> None:
    image, refresh = janitza_image()
    FarmProtocol.image = image
    FarmProtocol.reply_delay = reply_ms / 1000
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(FarmProtocol, "127.0.0.1", base_port + i, backlog=64)
        for i in range(count)
    ]
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: print(f"requests {FarmProtocol.requests}", flush=True)
    )
    print("ready", flush=True)
    try:
        while True:
            await asyncio.sleep(1.0)
            refresh()  # type: ignore[operator]
    finally:
        for s in servers:
            s.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--reply-ms", type=float, default=0.0, help="device response time")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.base_port, args.count, args.reply_ms))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
