"""A simulated Luxtronik controller in its own process, for the driver tests.

`python -m energy_pipeline_tests.luxtronik_sim_process PORT` (0: any free port) serves the
simulator on 127.0.0.1, prints `port N` once it accepts connections, then reads commands from
stdin, one per line, each answered `ok`: `fault KIND [COMMAND]` switches how the server
misbehaves (`fault none` heals it). End of stdin stops it.
"""

from __future__ import annotations

import asyncio
import sys

from energy_pipeline.config import Config
from energy_pipeline.simulators.luxtronik import Fault, LuxtronikServer, device_model


async def serve(port: int) -> None:
    config = Config.model_validate(
        {
            "site": {"name": "test-site", "timezone": "Europe/Berlin"},
            "devices": [{"id": "lux1", "driver": "luxtronik", "connection": {"host": "127.0.0.1"}}],
        }
    )
    server = LuxtronikServer(device_model(config.devices[0], config), "127.0.0.1", port)
    await server.start()
    print(f"port {server.port}", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        words = line.decode().split()
        if words and words[0] == "fault":
            command = int(words[2]) if len(words) > 2 else None
            server.fault = Fault(words[1], command)  # type: ignore[arg-type]
        print("ok", flush=True)
    await server.stop()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
