"""Alert rules with an injected clock: for-durations, hysteresis, stale data, device down,
profile defaults, and one event per transition to every listener."""

from __future__ import annotations

from pathlib import Path

from energy_pipeline.config import AlertRule
from energy_pipeline.live import build_outputs
from energy_pipeline.live.alerts import AlertEngine, AlertEvent
from energy_pipeline.live.state import StandaloneState
from energy_pipeline_tests.live_support import T0, Clock, failed, ok, ups_site


def engine(*rules: AlertRule, device: str = "ups1") -> AlertEngine:
    return AlertEngine([(device, r) for r in rules], T0)


def states(events: list[AlertEvent]) -> list[str]:
    return [e.state for e in events]


def test_threshold_waits_for_duration_and_clears_only_past_hysteresis() -> None:
    rule = AlertRule(
        device="ups1", metric="temperature", op=">", threshold=40, clear=38, for_seconds=30
    )
    eng, clock = engine(rule), Clock()
    assert eng.observe(ok("ups1", clock(), temperature=41), clock()) == []
    clock.advance(20)
    assert eng.observe(ok("ups1", clock(), temperature=42), clock()) == []
    clock.advance(5)
    assert eng.observe(ok("ups1", clock(), temperature=39.5), clock()) == [], "dip resets"
    clock.advance(5)
    assert eng.observe(ok("ups1", clock(), temperature=41), clock()) == []
    clock.advance(29)
    assert eng.evaluate(clock()) == []
    clock.advance(1)
    raised = eng.evaluate(clock())
    assert states(raised) == ["raised"] and raised[0].value == 41
    assert eng.evaluate(clock.advance(10)) == [], "raised once, not every tick"
    # Between clear (38) and threshold (40): still active — hysteresis.
    assert eng.observe(ok("ups1", clock(), temperature=39), clock()) == []
    assert eng.observe(ok("ups1", clock.advance(1), temperature=41), clock()) == []
    assert len(eng.active()) == 1
    cleared = eng.observe(ok("ups1", clock.advance(1), temperature=37.9), clock())
    assert states(cleared) == ["cleared"] and eng.active() == []
    assert eng.observe(ok("ups1", clock.advance(1), temperature=37), clock()) == []


def test_threshold_without_for_raises_at_once_and_without_clear_uses_threshold() -> None:
    rule = AlertRule(device="ups1", metric="battery_level", op="<", threshold=20)
    eng, clock = engine(rule), Clock()
    assert states(eng.observe(ok("ups1", clock(), battery_level=19), clock())) == ["raised"]
    assert eng.observe(ok("ups1", clock.advance(1), battery_level=10), clock()) == []
    assert states(eng.observe(ok("ups1", clock.advance(1), battery_level=20), clock())) == [
        "cleared"
    ]


def test_failed_polls_and_missing_metric_do_not_move_threshold_rules() -> None:
    rule = AlertRule(device="ups1", metric="nonexistent", op=">", threshold=1)
    eng, clock = engine(rule), Clock()
    assert eng.observe(ok("ups1", clock()), clock()) == []
    assert eng.observe(failed("ups1", clock.advance(1)), clock()) == []
    assert eng.evaluate(clock.advance(100)) == []


def test_stale_rule_raises_after_silence_and_clears_on_next_reading() -> None:
    rule = AlertRule(device="ups1", kind="stale", after=60, severity="critical")
    eng, clock = engine(rule), Clock()
    eng.observe(ok("ups1", clock()), clock())
    eng.observe(failed("ups1", clock.advance(30)), clock())
    assert eng.evaluate(clock.advance(29)) == []
    raised = eng.evaluate(clock.advance(1))
    assert states(raised) == ["raised"] and raised[0].severity == "critical"
    assert eng.evaluate(clock.advance(60)) == []
    assert states(eng.observe(ok("ups1", clock.advance(1)), clock())) == ["cleared"]


def test_device_never_answering_goes_stale_from_engine_start() -> None:
    eng, clock = engine(AlertRule(device="ups1", kind="stale", after=10)), Clock()
    assert eng.evaluate(clock.advance(9)) == []
    assert states(eng.evaluate(clock.advance(1))) == ["raised"]


def test_device_down_after_consecutive_failures() -> None:
    eng, clock = engine(AlertRule(device="ups1", kind="device_down", failures=3)), Clock()
    for _ in range(2):
        assert eng.observe(failed("ups1", clock.advance(1)), clock()) == []
    assert eng.observe(ok("ups1", clock.advance(1)), clock()) == [], "a success resets"
    for _ in range(2):
        eng.observe(failed("ups1", clock.advance(1)), clock())
    assert states(eng.observe(failed("ups1", clock.advance(1)), clock())) == ["raised"]
    assert eng.observe(failed("ups1", clock.advance(1)), clock()) == []
    assert states(eng.observe(ok("ups1", clock.advance(1)), clock())) == ["cleared"]


def test_profile_defaults_star_rules_and_config_override(tmp_path: Path) -> None:
    config = ups_site(
        tmp_path,
        """\
alerts:
  rules:
    - {device: ups2, metric: battery_level, op: "<", threshold: 50}
    - {device: "*", kind: device_down, failures: 1}
""",
    )
    clock = Clock()
    live = build_outputs(config, StandaloneState(started_at=clock()), clock)
    seen: list[AlertEvent] = []
    live.alerts.listeners.append(seen.append)
    # ups1 uses the profile default (< 20, clear 25); ups2 the config rule (< 50).
    live.alerts.offer([ok(d, clock(), battery_level=40) for d in ("ups1", "ups2")])
    assert [(e.device_id, e.rule) for e in seen] == [("ups2", "battery_level < 50")]
    live.alerts.offer([ok("ups1", clock.advance(1), battery_level=15, status=1)])
    assert {(e.device_id, e.rule, e.severity) for e in seen[1:]} == {
        ("ups1", "battery_level < 20", "critical"),
        ("ups1", "status == 1", "warning"),
    }
    assert any("on battery" in e.message for e in seen)
    live.alerts.offer([failed("ups2", clock.advance(1))])
    assert (seen[-1].device_id, seen[-1].rule, seen[-1].state) == ("ups2", "down", "raised")
    assert len(live.alerts.recent) == len(seen) == 4
    active = {(a["device_id"], a["rule"]) for a in live.alerts.engine.active()}
    assert ("ups2", "down") in active and ("ups1", "status == 1") in active


def test_profile_defaults_can_be_switched_off(tmp_path: Path) -> None:
    config = ups_site(tmp_path, "alerts: {profile_defaults: false}\n")
    clock = Clock()
    live = build_outputs(config, StandaloneState(started_at=clock()), clock)
    live.alerts.offer([ok("ups1", clock(), battery_level=1, status=1)])
    assert live.alerts.engine.active() == []


def test_a_failing_listener_does_not_stop_the_others(tmp_path: Path) -> None:
    config = ups_site(tmp_path)
    clock = Clock()
    live = build_outputs(config, StandaloneState(started_at=clock()), clock)
    seen: list[AlertEvent] = []

    def broken(_event: AlertEvent) -> None:
        raise RuntimeError("listener bug")

    live.alerts.listeners[:0] = [broken]
    live.alerts.listeners.append(seen.append)
    live.alerts.offer([ok("ups1", clock(), battery_level=5)])
    assert [e.rule for e in seen] == ["battery_level < 20"]
