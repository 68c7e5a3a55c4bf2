"""The `vpn:` section: named OpenVPN tunnels that devices reach their site through."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated

from pydantic import Field

from energy_pipeline.config.base import DEVICE_ID_PATTERN, Port, Strict
from energy_pipeline.yamlfile import LoadedYaml, Problem

TunnelName = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, min_length=1, max_length=64)]


class VpnTunnel(Strict):
    """One site tunnel. The product runs openvpn with this `.ovpn` itself; `auth` is a file with
    the user name and the password on two lines (openvpn's `--auth-user-pass` file)."""

    config: Path = Field(description=".ovpn file; relative to the config file")
    auth: Path | None = Field(
        None, description='auth-user-pass file, best given as "${VAR}"; relative to the config file'
    )
    auto: bool = Field(
        False,
        description="collect brings the tunnel up and down itself; poll-once and health bring "
        "it up for the call when no collector runs it",
    )
    management_port: Port | None = Field(
        None, description="management interface port on 127.0.0.1; default: a free one"
    )
    connect_timeout: float = Field(30.0, gt=0, le=600, description="seconds to reach CONNECTED")
    max_retries: int | None = Field(
        None, ge=0, description="restarts in a row before collect gives up; none: forever"
    )


def vpn_problems(
    tunnels: Mapping[str, VpnTunnel],
    device_tunnels: Sequence[str | None],
    resolve: Callable[[Path], Path],
    loaded: LoadedYaml,
) -> list[Problem]:
    """Devices name a configured tunnel; each tunnel's files exist. A path filled from ${VAR}
    is not repeated in the message: it may say more than the user wants in a log."""
    problems: list[Problem] = []
    expected = ", ".join(sorted(tunnels)) or "none (add a vpn: section)"
    for i, name in enumerate(device_tunnels):
        if name is not None and name not in tunnels:
            problems.append(
                loaded.problem(
                    ("devices", i, "vpn"),
                    f"no tunnel {name!r} under vpn:; expected one of {expected}",
                )
            )
    for name, tunnel in tunnels.items():
        for key, path, what in (
            ("config", tunnel.config, "an OpenVPN .ovpn file"),
            ("auth", tunnel.auth, "a file with the user name and password on two lines"),
        ):
            if path is None or resolve(path).is_file():
                continue
            shown = "" if ("vpn", name, key) in loaded.substituted else f" {resolve(path)}"
            problems.append(
                loaded.problem(("vpn", name, key), f"file{shown} does not exist; expected {what}")
            )
    return problems
