"""A Janitza on the far side of a site VPN, for the tunnel tests.

`python -m energy_pipeline_tests.vpn_modbus_server HOST PORT` serves the UMG 509's test values
(`modbus_support.sample_values`) on HOST:PORT only — the VPN server's tunnel address, inside
the "site" network namespace — prints `listening` once it accepts connections, and runs until
SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from pymodbus.server import ModbusTcpServer

from energy_pipeline.profiles import load_profile
from energy_pipeline_tests.modbus_support import sample_values, simdevice

PROFILES = Path(__file__).resolve().parent.parent / "energy_pipeline" / "profiles"


async def serve(host: str, port: int) -> None:
    profile = load_profile("janitza_umg509pro", PROFILES)
    server = ModbusTcpServer([simdevice(profile, sample_values(profile), 1)], address=(host, port))
    await server.serve_forever(background=True)
    print("listening", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.shutdown()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))
