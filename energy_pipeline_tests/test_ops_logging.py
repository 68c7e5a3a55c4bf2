"""The `logging:` section: levels per component, a size-rotated file, JSON lines, secrets
redacted in every line and every rotated file; a real `collect` writes its state changes there."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator

import pytest

from energy_pipeline.logs import component_logger, register_secret, setup_logging
from energy_pipeline_tests.collector_support import (
    acked,
    collector,
    collector_site,
    janitza,
    wait_for,
)
from energy_pipeline_tests.conftest import run_cli
from energy_pipeline_tests.kit.ports import free_ports
from energy_pipeline_tests.kit.sims import simulators

SECRET = "hunter2-very-secret"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """setup_logging replaces the root handlers; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    touched = [logging.getLogger(component_logger(c)) for c in ("collector", "mqtt")]
    try:
        yield
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for lg in touched:
            lg.setLevel(logging.NOTSET)


def test_json_lines_rotate_by_size_and_never_carry_a_secret(tmp_path, root_logging):
    register_secret(SECRET)
    path = tmp_path / "logs" / "collector.log"
    setup_logging(file=path, max_bytes=2048, backups=2, fmt="json")
    log = logging.getLogger("energy_pipeline.collector")
    for i in range(200):
        log.warning(
            f"device down {i} with {SECRET}",
            extra={"fields": {"device": "umg1", "error": f"auth {SECRET} refused", "n": i}},
        )
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["collector.log", "collector.log.1", "collector.log.2"]
    lines = []
    for name in reversed(files):  # oldest first: .2, .1, then the live file
        data = (path.parent / name).read_text()
        assert SECRET not in data
        assert len(data.encode()) <= 2048
        lines += data.splitlines()
    docs = [json.loads(line) for line in lines]
    assert {"ts", "level", "logger", "message", "device", "error", "n"} <= set(docs[-1])
    assert docs[-1]["level"] == "WARNING" and docs[-1]["logger"] == "energy_pipeline.collector"
    assert docs[-1]["message"] == "device down 199 with ***"
    assert docs[-1]["error"] == "auth *** refused" and docs[-1]["n"] == 199
    # the newest file holds the newest lines: rotation kept order and dropped the oldest
    numbers = sorted(d["n"] for d in docs)
    assert numbers == list(range(numbers[0], 200)) and numbers[0] > 0


def test_levels_per_component(tmp_path, root_logging):
    path = tmp_path / "site.log"
    setup_logging(file=path, level="info", levels={"collector": "warning"})
    logging.getLogger("energy_pipeline.collector").info("quiet please")
    logging.getLogger("energy_pipeline.collector.landing").info("quiet too")
    logging.getLogger("energy_pipeline.collector").warning("loud enough")
    logging.getLogger("energy_pipeline.mqtt").info("broker connected")
    logging.getLogger("energy_pipeline.mqtt").debug("not at info")
    text = path.read_text()
    assert "quiet" not in text and "not at info" not in text
    assert "loud enough" in text and "broker connected" in text
    assert all(line.count(" ") >= 3 for line in text.splitlines())  # ts level logger message


def test_collect_writes_state_changes_one_line_each_to_its_file(tmp_path):
    ports = free_ports(2)
    config = collector_site(tmp_path, [janitza("umg1", ports[0]), janitza("gone", ports[1])])
    config.write_text(
        config.read_text() + "logging: {file: logs/collect.log, format: json, max_bytes: 4096}\n"
    )
    data = tmp_path / "data"
    served = collector_site(tmp_path / "sim", [janitza("umg1", ports[0])])
    with simulators(served):
        proc = collector(config, tmp_path / "stderr.log")
        wait_for(lambda: acked(data, proc.pid), 30, "first acknowledgement")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    docs = [
        json.loads(line) for line in (tmp_path / "logs" / "collect.log").read_text().splitlines()
    ]
    messages = [(d["message"], d.get("device")) for d in docs]
    assert messages.count(("device up", "umg1")) == 1
    assert messages.count(("device down", "gone")) == 1
    assert ("collector stopped", None) in messages
    assert (tmp_path / "stderr.log").read_text().count('"message": "device up"') == 1


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("{format: xml}", "logging.format"),
        ("{levels: {collector: loud}}", "logging.levels.collector"),
        ("{max_bytes: 10}", "logging.max_bytes"),
        ("{colour: true}", "logging.colour"),
    ],
)
def test_bad_logging_sections_are_config_errors(tmp_path, section, key):
    config = collector_site(tmp_path, [janitza("umg1", 1)])
    config.write_text(config.read_text() + f"logging: {section}\n")
    done = run_cli("config", "validate", str(config))
    assert done.returncode == 2 and key in done.stderr, done.stderr
