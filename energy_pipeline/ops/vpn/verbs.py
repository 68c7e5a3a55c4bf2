"""`energy-pipeline vpn up|down|status [--name N]`: the site tunnels by hand.

`up` leaves openvpn running after the command exits (its record under data/state lets
`status`, `down`, `poll-once`, `health` and `collect` find it); `down` stops it, whoever
started it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from energy_pipeline.collector.state import TunnelState
from energy_pipeline.collector.status import render_tunnel, tunnel_document
from energy_pipeline.config import Config
from energy_pipeline.ops.vpn.manager import bring_up, probe, take_down
from energy_pipeline.ops.vpn.tunnel import VpnError, pid_alive, read_record


def chosen(config: Config, name: str | None) -> list[str] | None:
    """The tunnels a verb acts on; None (after saying why) when `--name` names none."""
    if name is None:
        return sorted(config.vpn)
    if name not in config.vpn:
        known = ", ".join(sorted(config.vpn)) or "none"
        print(
            f"error: no tunnel {name!r} under vpn: in {config.path} (known: {known})",
            file=sys.stderr,
        )
        return None
    return [name]


def _show(rows: dict[str, dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for name, doc in rows.items():
            print(render_tunnel(name, doc) if doc["running"] else f"vpn {name}  not running")


def _row(status: TunnelState | None, name: str) -> dict[str, Any]:
    return {"running": status is not None, **tunnel_document(status or TunnelState(name))}


def vpn_up(config: Config, name: str | None, as_json: bool) -> int:
    names = chosen(config, name)
    if names is None:
        return 2
    rows: dict[str, dict[str, Any]] = {}
    failed = False
    for tunnel in names:
        try:
            status, _ = asyncio.run(bring_up(config, tunnel, "vpn-up"))
        except VpnError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            rows[tunnel] = _row(None, tunnel)
            continue
        rows[tunnel] = _row(status, tunnel)
        if not status.up:  # already running (a collector's), but not connected right now
            print(f"error: vpn {tunnel} runs but is {status.state}", file=sys.stderr)
            failed = True
    _show(rows, as_json)
    return 1 if failed else 0


def vpn_down(config: Config, name: str | None, as_json: bool) -> int:
    names = chosen(config, name)
    if names is None:
        return 2
    rows = {}
    for tunnel in names:
        record = read_record(config.data_dir, tunnel)
        watcher = record.owner_pid if record and record.owner == "collect" else None
        stopped = asyncio.run(take_down(config, tunnel))
        rows[tunnel] = {"stopped": stopped}
        if not as_json:
            print(f"vpn {tunnel}  {'stopped' if stopped else 'was not running'}")
        if stopped and config.vpn[tunnel].auto and pid_alive(watcher):
            print(
                f"note: the running collector (pid {watcher}) brings auto tunnel {tunnel} back "
                "up; stop the collector to keep it down",
                file=sys.stderr,
            )
    if as_json:
        print(json.dumps(rows, indent=2))
    return 0


def vpn_status(config: Config, name: str | None, as_json: bool) -> int:
    names = chosen(config, name)
    if names is None:
        return 2
    _show({t: _row(asyncio.run(probe(config, t)), t) for t in names}, as_json)
    return 0
