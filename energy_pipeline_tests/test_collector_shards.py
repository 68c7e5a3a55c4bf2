"""How `collect` splits a site over worker processes (pure: the config in, shards out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from energy_pipeline.collector.shards import (
    is_shard_of,
    shard_config,
    split,
    worker_count,
)
from energy_pipeline.yamlfile import ConfigError
from energy_pipeline_tests.collector_support import janitza
from energy_pipeline_tests.kit.sites import write_site


def rtu(dev_id: str, port: str, unit: int) -> dict:
    return {
        "id": dev_id,
        "driver": "modbus",
        "profile": "must_ep20",
        "interval": 1,
        "connection": {"transport": "rtu", "serial_port": port, "unit_id": unit},
    }


def meters(count: int) -> list[dict]:
    return [janitza(f"m{i:04d}", 20000 + i) for i in range(count)]


def load(tmp_path: Path, devices: list[dict], **collector):
    from energy_pipeline.config import load_config

    return load_config(write_site(tmp_path, devices, collector=collector or None))


def test_auto_is_one_process_below_200_devices_and_one_per_core_from_200(tmp_path):
    assert worker_count(load(tmp_path / "a", meters(199)), cores=2) == 1
    assert worker_count(load(tmp_path / "b", meters(200)), cores=2) == 2
    assert worker_count(load(tmp_path / "c", meters(200)), cores=8) == 8


def test_a_number_is_kept_but_never_exceeds_the_groups_to_split(tmp_path):
    assert worker_count(load(tmp_path / "a", meters(10), workers=3)) == 3
    bus = [rtu(f"u{i}", "/dev/ttyUSB0", i + 1) for i in range(6)]
    assert worker_count(load(tmp_path / "b", bus, workers=4)) == 1


def test_the_split_is_stable_balanced_and_covers_every_device_once(tmp_path):
    config = load(tmp_path, meters(2000), workers=2)
    shards = split(config.devices, 2)
    ids = [d.id for shard in shards for d in shard]
    assert sorted(ids) == sorted(d.id for d in config.devices)
    assert [len(s) for s in shards] == [1000, 1000]
    again = load(tmp_path / "again", meters(2000)[::-1], workers=2)  # order does not matter
    assert {d.id for d in split(again.devices, 2)[0]} == {d.id for d in shards[0]}


def test_devices_on_one_serial_bus_or_one_tunnel_stay_in_one_worker(tmp_path):
    devices = [rtu(f"bus{i}", "/dev/ttyUSB0", i + 1) for i in range(5)]
    devices += [{**janitza(f"far{i}", 21000 + i), "vpn": "plant"} for i in range(5)]
    devices += meters(20)
    extra = "vpn:\n  plant: {config: plant.ovpn}\n"
    (tmp_path / "plant.ovpn").write_text("client\n")
    from energy_pipeline.config import load_config

    config = load_config(write_site(tmp_path, devices, collector={"workers": 4}, extra=extra))
    assert sorted(len(s) for s in split(config.devices, 4)) == [7, 7, 8, 8]
    for prefix in ("bus", "far"):
        holders = {
            i for i, s in enumerate(split(config.devices, 4)) for d in s if d.id[:3] == prefix
        }
        assert len(holders) == 1, f"{prefix} devices spread over workers {holders}"


def test_a_worker_runs_its_devices_under_its_own_id_and_wal_folder(tmp_path):
    config = load(tmp_path, meters(50), id="plant", workers=2, wal_dir="/var/lib/wal")
    first, second = (shard_config(config, i, 2) for i in range(2))
    assert (first.collector.id, second.collector.id) == ("plant-w0", "plant-w1")
    assert first.collector.wal_dir == Path("/var/lib/wal/plant-w0")
    assert {d.id for d in first.devices} | {d.id for d in second.devices} == {
        d.id for d in config.devices
    }
    assert not {d.id for d in first.devices} & {d.id for d in second.devices}
    assert first.data_dir == config.data_dir
    assert is_shard_of("plant", "plant-w12") and not is_shard_of("plant", "plant-west")


@pytest.mark.parametrize("value", [0, 65, "many"])
def test_a_bad_worker_count_names_the_key_and_what_it_takes(tmp_path, value):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, meters(1), workers=value)
    text = str(err.value)
    assert "collector.workers" in text and "site.yaml" in text
    assert "auto" in text


def test_an_id_that_names_a_worker_is_refused(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, meters(1), id="main-w1")
    assert "collector.id" in str(err.value) and "worker" in str(err.value)
