"""deploy/: the Grafana dashboards as importable JSON (Grafana itself is not installable here),
their provisioning files, promtool on the Prometheus config, rules and rule unit tests, and a
real Prometheus scraping a real `collect` of simulated devices (a Janitza over Modbus TCP, an
ECHONET meter's dongle and a MUST EP20 on ptys) in which every dashboard panel's query, with
its template variables filled in from Prometheus, returns data."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from energy_pipeline_tests.conftest import REPO, require_program
from energy_pipeline_tests.live_support import collecting, free_port, meter_ups_site, wait_port
from energy_pipeline_tests.test_live_collect import get

DEPLOY = REPO / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
UIDS = {"energy-site-overview", "energy-device-detail", "energy-ups", "energy-data-quality"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in doc["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def variables(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in doc["templating"]["list"]}


def test_dashboards_are_importable_json() -> None:
    docs = [load(p) for p in DASHBOARDS]
    assert {d["uid"] for d in docs} == UIDS and len(docs) == len(UIDS)
    for doc in docs:
        name = doc["uid"]
        vars_ = variables(doc)
        ds = vars_["datasource"]
        assert (ds["type"], ds["query"]) == ("datasource", "prometheus"), name
        ids = [p["id"] for p in panels(doc)]
        assert ids and len(ids) == len(set(ids)), name
        for panel in panels(doc):
            where = f"{name} panel {panel['title']!r}"
            assert panel["datasource"] == DATASOURCE, where
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
            targets = panel["targets"]
            assert targets, f"{where} has no targets"
            assert len({t["refId"] for t in targets}) == len(targets), where
            for target in targets:
                assert target["datasource"] == DATASOURCE, where
                assert isinstance(target["expr"], str) and target["expr"].strip(), where
                used = set(VARIABLE.findall(target["expr"]))
                assert used <= set(vars_), f"{where} uses undefined {used - set(vars_)}"
        for var in vars_.values():
            if var["type"] == "query":
                assert var["datasource"] == DATASOURCE
                assert LABEL_VALUES.match(var["query"]["query"]), var
    detail = variables(load(DEPLOY / "grafana" / "dashboards" / "device_detail.json"))
    assert "device" in detail
    ups = "\n".join(
        t["expr"]
        for p in panels(load(DEPLOY / "grafana/dashboards/ups.json"))
        for t in p["targets"]
    )
    for name in ("ups_status", "ups_battery_level", "ups_input_voltage", "ups_load_percent"):
        assert name in ups, "the UPS monitor's metric names"


def test_provisioning_points_at_the_dashboards() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert sources["apiVersion"] == 1
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    boards = yaml.safe_load((provisioning / "dashboards" / "energy_pipeline.yaml").read_text())
    (provider,) = boards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_program("promtool"), *args], capture_output=True, text=True, check=False
    )


def test_promtool_checks_config_rules_and_runs_the_rule_unit_tests() -> None:
    assert RULES and RULE_TESTS
    checked = promtool("check", "rules", *map(str, RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    tested = promtool("test", "rules", *map(str, RULE_TESTS))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    rules = yaml.safe_load(RULES[0].read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = "\n".join(p.read_text() for p in RULE_TESTS)
    untested = {a for a in alerts if f"alertname: {a}" not in tests}
    assert not untested, f"alerts without a unit test: {untested}"
    assert "energy_disk_free_ratio" in tests and "energy_disk_free_bytes" in tests


JANITZA = """\
  - id: umg509
    driver: modbus
    profile: janitza_umg509pro
    connection: {{transport: tcp, host: 127.0.0.1, port: {port}}}
    interval: 1
"""
OUTPUTS = "  http: {{port: {http}}}\n  file: {{path: live}}\n"


PROMETHEUS = """\
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: {rules}
scrape_configs:
  - job_name: energy_pipeline
    static_configs: [{{targets: ["127.0.0.1:{http}"]}}]
"""


class Prometheus:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def label_values(self, query: str, values: dict[str, str]) -> list[str]:
        match = LABEL_VALUES.match(query)
        assert match is not None
        selector, label = fill(match.group(1), values), match.group(2)
        series = self.api("series", **{"match[]": selector})
        return sorted({s[label] for s in series if label in s})

    def has_data(self, expr: str) -> bool:
        return bool(self.api("query", query=expr)["result"])


def fill(expr: str, values: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), expr)


def bindings(prom: Prometheus, doc: dict[str, Any]) -> list[dict[str, str]]:
    """Every combination of the dashboard's variables: a query variable's values as Prometheus
    lists them (its All value where it has one), in order, so one may depend on another."""
    combos: list[dict[str, str]] = [{}]
    for var in doc["templating"]["list"]:
        if var["type"] != "query":
            continue
        grown = []
        for combo in combos:
            if var.get("includeAll") and "allValue" in var:
                options = [var["allValue"]]
            else:
                options = prom.label_values(var["query"]["query"], combo)
            grown += [{**combo, var["name"]: value} for value in options]
        combos = grown
    return combos


def unanswered(prom: Prometheus) -> list[str]:
    """Panel targets that return no data under any binding of their dashboard's variables."""
    missing = []
    for path in DASHBOARDS:
        doc = load(path)
        combos = bindings(prom, doc)
        for panel, target in itertools.chain.from_iterable(
            ((p, t) for t in p["targets"]) for p in panels(doc)
        ):
            if not any(prom.has_data(fill(target["expr"], c)) for c in combos):
                missing.append(f"{doc['uid']}: {panel['title']}: {target['expr']}")
    return missing


@pytest.mark.slow
def test_prometheus_scraping_collect_answers_every_panel(tmp_path: Path) -> None:
    binary = require_program("prometheus")
    http, prom_port = free_port(), free_port()
    config = tmp_path / "site.yaml"
    janitza = JANITZA.format(port=free_port())
    config.write_text(meter_ups_site(OUTPUTS.format(http=http), janitza))
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(PROMETHEUS.format(rules=json.dumps([str(p) for p in RULES]), http=http))
    prometheus: subprocess.Popen[bytes] | None = None
    with collecting(config):
        try:
            prometheus = subprocess.Popen(
                [
                    binary,
                    f"--config.file={prom_config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_port(prom_port, timeout=30)
            check_every_panel(Prometheus(prom_port), http)
        finally:
            if prometheus is not None:
                prometheus.terminate()
                prometheus.wait(15)


def check_every_panel(prom: Prometheus, http: int) -> None:
    deadline = time.monotonic() + 90
    missing = ["not asked yet"]
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = unanswered(prom)
    assert not missing, "panels without data:\n" + "\n".join(missing)
    rules = prom.api("rules")["groups"]
    health = {r["name"]: r["health"] for g in rules for r in g["rules"]}
    assert len(health) >= 10 and set(health.values()) == {"ok"}, health
    # One scrape's ups_status against its raw work state: 0 exactly in state 3 (battery).
    mapped = 'energy_reading{device="ups1", metric="status"} != bool 3'
    assert prom.has_data(f'ups_status{{device="ups1"}} == on(device) ({mapped})')
    assert get(f"http://127.0.0.1:{http}/api/health")[0] == 200
