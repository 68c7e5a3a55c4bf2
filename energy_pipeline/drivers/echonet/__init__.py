"""ECHONET Lite B-route smart meters through a Wi-SUN dongle (driver name `echonet_broute`).

`frame` is the ECHONET Lite codec, `meter` the class 0x0288 property decoding, `skstack` the
dongle dialogue, `driver` the I/O edge that ties them to the collector.
"""

from __future__ import annotations

from collections.abc import Sequence

from energy_pipeline.config import Config, EchonetDevice
from energy_pipeline.drivers.base import Driver
from energy_pipeline.drivers.echonet.driver import BRouteMeter


def build(devices: Sequence[EchonetDevice], config: Config) -> list[Driver]:
    return [BRouteMeter(dev, config) for dev in devices]
