"""Modbus TCP and RTU devices, described by register-map profiles.

`build` gives every device its driver; devices behind one TCP endpoint (a gateway) or on one
serial port share one connection and are polled one after another. `planner` and `codec` are
pure (register blocks, value decoding), `client` is the bus I/O and `driver` the `Driver`.
TCP goes through `tcp_link` (its frames are the pure `mbap`), serial through pymodbus.

The room may import `drivers.base`, `drivers.serial_lock`, config, readings and `profiles`.
Only `pymodbus_adapter` imports pymodbus, so a change in its internals breaks one small module
and its test, not the driver.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from energy_pipeline.config import Config, Device, ModbusDevice, ModbusTcp
from energy_pipeline.drivers.base import Driver, StateStores
from energy_pipeline.drivers.modbus.client import (
    Bus,
    Endpoint,
    SerialEndpoint,
    TcpEndpoint,
    tcp_client_choice,
)
from energy_pipeline.drivers.modbus.driver import ModbusDriver
from energy_pipeline.profiles import load_profile
from energy_pipeline.profiles.model import Profile


def endpoint_of(device: ModbusDevice, profile: Profile, config: Config) -> Endpoint:
    """Where to talk; serial settings not given in the config come from the profile."""
    conn = device.connection
    if isinstance(conn, ModbusTcp):
        return TcpEndpoint(conn.host, conn.port)
    return SerialEndpoint(
        port=str(config.resolve(conn.serial_port)),
        baudrate=conn.baudrate or profile.serial.baudrate,
        parity=conn.parity or profile.serial.parity,
        stopbits=conn.stopbits or profile.serial.stopbits,
        bytesize=conn.bytesize,
    )


def build(devices: Sequence[Device], config: Config, state: StateStores) -> list[Driver]:
    """Modbus devices keep no state across restarts; `state` is unused."""
    buses: dict[tuple[str, ...], Bus] = {}
    drivers: list[Driver] = []
    tcp_client = tcp_client_choice(os.environ)
    for dev in devices:
        assert isinstance(dev, ModbusDevice)
        profile = load_profile(dev.profile, config.base_dir)
        endpoint = endpoint_of(dev, profile, config)
        bus = buses.setdefault(endpoint.key, Bus(endpoint, config.data_dir, tcp_client=tcp_client))
        conn = dev.connection
        drivers.append(
            ModbusDriver(
                dev.id,
                profile,
                bus,
                unit_id=conn.unit_id or profile.unit_id,
                timeout=conn.timeout,
                retries=conn.retries,
                max_gap=dev.max_gap,
            )
        )
    return drivers
