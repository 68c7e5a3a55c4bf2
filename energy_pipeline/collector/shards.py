"""How `collect` splits a site over worker processes: pure functions of the config.

The parent and every worker compute the same split from the same config, so a worker needs
only its number to know its devices. Devices go to workers in groups keyed by what they share
with others: their serial bus, their Modbus TCP gateway (devices behind one address take turns
on one connection) or their VPN tunnel (each tunnel is supervised by exactly one process); a
device that shares nothing is a group of its own. The order is a stable hash (crc32, not
Python's salted `hash`) of the keys, so the split depends on the config alone. A device that
moves to another worker when the config changes loses nothing: the WAL it left is replayed by
the worker it left, under that worker's id.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence

from energy_pipeline.config import Config, Device
from energy_pipeline.config.sections import AUTO_WORKERS_FROM


def core_count() -> int:
    return len(os.sched_getaffinity(0))


def worker_count(config: Config, cores: int | None = None) -> int:
    """Processes `collect` runs: `collector.workers`, or for `auto` one per core from
    AUTO_WORKERS_FROM devices on; never more than there are groups of devices to split."""
    setting = config.collector.workers
    if setting == "auto":
        wanted = 1 if len(config.devices) < AUTO_WORKERS_FROM else cores or core_count()
    else:
        wanted = setting
    groups = len({shard_key(d) for d in config.devices})
    return max(1, min(wanted, groups))


def shard_key(device: Device) -> str:
    """What the device must share a worker with (see the module docstring)."""
    if device.vpn:
        return f"vpn:{device.vpn}"
    connection = device.connection
    serial_port = getattr(connection, "serial_port", None)
    if serial_port is not None:
        return f"serial:{os.path.realpath(serial_port)}"
    if device.driver == "modbus":
        return f"tcp:{connection.host}:{connection.port}"
    return f"device:{device.id}"


def split(devices: Sequence[Device], count: int) -> list[list[Device]]:
    """The devices of each worker (config order within each), balanced by device count.

    Groups that must stay together go largest first, ties in the order of a stable hash of
    their key, each to the worker with the fewest devices so far: the same config always
    gives the same split, and no worker is left empty while another holds two groups.
    """
    groups: dict[str, list[Device]] = {}
    for device in devices:
        groups.setdefault(shard_key(device), []).append(device)
    order = sorted(groups, key=lambda k: (-len(groups[k]), zlib.crc32(k.encode()), k))
    loads = [0] * count
    home: dict[str, int] = {}
    for key in order:
        target = min(range(count), key=lambda i: (loads[i], i))
        home[key] = target
        loads[target] += len(groups[key])
    shards: list[list[Device]] = [[] for _ in range(count)]
    for device in devices:
        shards[home[shard_key(device)]].append(device)
    return shards


def shard_id(collector_id: str, index: int) -> str:
    return f"{collector_id}-w{index}"


def shard_config(config: Config, index: int, count: int) -> Config:
    """The config worker `index` of `count` runs: its devices, under its own collector id."""
    devices = split(config.devices, count)[index]
    own = shard_id(config.collector.id, index)
    settings: dict[str, object] = {"id": own}
    if config.collector.wal_dir is not None:
        settings["wal_dir"] = config.collector.wal_dir / own
    collector = config.collector.model_copy(update=settings)
    return config.model_copy(update={"devices": devices, "collector": collector})


def is_shard_of(collector_id: str, candidate: str) -> bool:
    """Whether `candidate` names a worker of `collector_id` (any worker count)."""
    prefix = f"{collector_id}-w"
    return candidate.startswith(prefix) and candidate[len(prefix) :].isdigit()
