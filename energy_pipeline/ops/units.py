"""The three systemd units, as text: a pure function of a plan drawn from the site config.

Each unit runs one long-lived process of the product from the absolute venv and config paths,
restarts on failure and is sandboxed: the whole file system read-only apart from the folders
the product writes (data dir, WAL dir, log folder, file output), no privilege gain, a private
/tmp, kernel and cgroup knobs out of reach. The collector is `Type=notify` with a watchdog:
it pings only while its scheduler ticks and its committer takes readings in.

Devices: with no serial port and no VPN the collector gets a private /dev; otherwise only the
configured ports (and the USB serial classes, so a replugged adapter that comes back under
another ttyUSB number is still reachable) plus `/dev/net/tun` when a VPN is configured. A port
outside /dev is a link to a pseudo terminal (the simulators' serial ports): systemd can only
name device nodes, so those get the pseudo-terminal class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from energy_pipeline.config import Config, EchonetDevice, ModbusDevice, ModbusRtu

COLLECT_UNIT = "energy-pipeline-collect.service"
WEBSERVER_UNIT = "energy-pipeline-dagster-webserver.service"
DAEMON_UNIT = "energy-pipeline-dagster-daemon.service"
UNITS = (COLLECT_UNIT, WEBSERVER_UNIT, DAEMON_UNIT)

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
SYSTEM_ENV_FILE = Path("/etc/energy-pipeline/env")
USER_UNIT_DIR = Path("~/.config/systemd/user")
USER_ENV_FILE = Path("~/.config/energy-pipeline/env")
HOME_ROOTS = (Path("/home"), Path("/root"), Path("/run/user"))
USB_SERIAL_CLASSES = ("char-ttyUSB", "char-ttyACM")
PTY_CLASS = "char-pts"
DEFINITIONS_MODULE = "energy_pipeline.definitions"


class PlanError(ValueError):
    """A combination of options and config the units cannot honour."""


@dataclass(frozen=True, slots=True)
class UnitPlan:
    bin_dir: Path
    config: Path
    data_dir: Path
    dagster_home: Path
    env_file: Path
    writable: tuple[Path, ...]
    serial_ports: tuple[str, ...] = ()
    needs_tun: bool = False
    user_mode: bool = False
    run_as: str | None = None
    watchdog_sec: int = 60
    webserver_host: str = "127.0.0.1"
    webserver_port: int = 3000


def config_needs_tun(config: Config) -> bool:
    """Whether a VPN tunnel is configured (the collector then needs CAP_NET_ADMIN and
    /dev/net/tun for the openvpn it runs)."""
    return bool(config.vpn)


def serial_ports(config: Config) -> tuple[str, ...]:
    ports: list[str] = []
    for dev in config.devices:
        conn = dev.connection
        if (isinstance(dev, ModbusDevice) and isinstance(conn, ModbusRtu)) or isinstance(
            dev, EchonetDevice
        ):
            port = str(config.resolve(conn.serial_port))
            if port not in ports:
                ports.append(port)
    return tuple(ports)


def writable_paths(config: Config) -> tuple[Path, ...]:
    """Folders the product writes, outermost only (a folder inside another is covered)."""
    paths = [config.data_dir]
    if config.collector.wal_dir is not None:
        paths.append(config.resolve(config.collector.wal_dir))
    if config.logging.file is not None:
        paths.append(config.resolve(config.logging.file).parent)
    if config.outputs.file is not None:
        paths.append(config.resolve(config.outputs.file.path))
    outer = [p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)]
    return tuple(dict.fromkeys(outer))


def plan_units(
    config: Config,
    *,
    bin_dir: Path,
    user_mode: bool,
    needs_tun: bool,
    env_file: Path | None = None,
    run_as: str | None = None,
) -> UnitPlan:
    if user_mode and needs_tun:
        raise PlanError(
            "a VPN needs CAP_NET_ADMIN, which a user unit cannot grant; install system units "
            "(without --user)"
        )
    default_env = USER_ENV_FILE if user_mode else SYSTEM_ENV_FILE
    return UnitPlan(
        bin_dir=bin_dir.absolute(),
        config=config.path,
        data_dir=config.data_dir,
        dagster_home=config.data_dir / "dagster",
        env_file=(env_file or default_env).expanduser().absolute(),
        writable=writable_paths(config),
        serial_ports=serial_ports(config),
        needs_tun=needs_tun,
        user_mode=user_mode,
        run_as=None if user_mode else run_as,
    )


def _quote(path: Path | str) -> str:
    text = str(path)
    if any(c in text for c in ' "\\'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _under_home(paths: tuple[Path, ...]) -> bool:
    return any(p.is_relative_to(root) for p in paths for root in HOME_ROOTS)


def _sandbox(plan: UnitPlan, *, devices: list[str], netadmin: bool) -> list[str]:
    """Hardening shared by the three units. ProtectHome is left out when the product writes
    under a home folder: a read-only /home there would need per-version exceptions."""
    lines = [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=" + " ".join(_quote(p) for p in plan.writable),
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "UMask=0027",
    ]
    if not _under_home(plan.writable):
        lines.insert(3, "ProtectHome=read-only")
    if not devices:
        lines.append("PrivateDevices=yes")
    elif not plan.user_mode:
        lines.append("DevicePolicy=closed")
        lines += [f"DeviceAllow={d} rw" for d in devices]
    if plan.user_mode:
        return lines
    if plan.run_as:
        lines.insert(0, f"User={plan.run_as}")
    if plan.serial_ports:
        lines.append("SupplementaryGroups=dialout")
    if netadmin:
        lines += ["CapabilityBoundingSet=CAP_NET_ADMIN", "AmbientCapabilities=CAP_NET_ADMIN"]
    else:
        lines.append("CapabilityBoundingSet=")
    return lines


def _environment(plan: UnitPlan) -> list[str]:
    return [
        f"Environment=ENERGY_PIPELINE_CONFIG={_quote(plan.config)}",
        f"Environment=DAGSTER_HOME={_quote(plan.dagster_home)}",
        "Environment=PYTHONUNBUFFERED=1",
        f"EnvironmentFile=-{_quote(plan.env_file)}",
        f"WorkingDirectory={_quote(plan.config.parent)}",
    ]


def _unit(plan: UnitPlan, description: str, service: list[str], *, after_network: bool) -> str:
    unit = [f"Description={description}"]
    if after_network and not plan.user_mode:
        unit += ["Wants=network-online.target", "After=network-online.target"]
    target = "default.target" if plan.user_mode else "multi-user.target"
    sections = [
        "[Unit]",
        *unit,
        "",
        "[Service]",
        *service,
        "",
        "[Install]",
        f"WantedBy={target}",
    ]
    return "\n".join(sections) + "\n"


def render_units(plan: UnitPlan) -> dict[str, str]:
    """Unit file name -> text, for the collector, the Dagster webserver and its daemon."""
    exe = plan.bin_dir
    nodes = [p for p in plan.serial_ports if Path(p).is_relative_to("/dev")]
    devices = [*nodes, *(USB_SERIAL_CLASSES if plan.serial_ports else ())]
    if len(nodes) < len(plan.serial_ports):
        devices.append(PTY_CLASS)
    if plan.needs_tun:
        devices.append("/dev/net/tun")
    collect = [
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={_quote(exe / 'energy-pipeline')} collect --config {_quote(plan.config)}",
        f"WatchdogSec={plan.watchdog_sec}",
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStopSec=60",
        *_environment(plan),
        *_sandbox(plan, devices=devices, netadmin=plan.needs_tun),
    ]
    dagster_args = f"-m {DEFINITIONS_MODULE}"
    webserver = [
        "Type=simple",
        f"ExecStart={_quote(exe / 'dagster-webserver')} -h {plan.webserver_host} "
        f"-p {plan.webserver_port} {dagster_args}",
        "Restart=on-failure",
        "RestartSec=5",
        *_environment(plan),
        *_sandbox(plan, devices=[], netadmin=False),
    ]
    daemon = [
        "Type=simple",
        f"ExecStart={_quote(exe / 'dagster-daemon')} run {dagster_args}",
        "Restart=on-failure",
        "RestartSec=5",
        *_environment(plan),
        *_sandbox(plan, devices=[], netadmin=False),
    ]
    return {
        COLLECT_UNIT: _unit(plan, "energy_pipeline collector", collect, after_network=True),
        WEBSERVER_UNIT: _unit(plan, "energy_pipeline Dagster UI", webserver, after_network=True),
        DAEMON_UNIT: _unit(
            plan, "energy_pipeline Dagster daemon (sensor, schedules)", daemon, after_network=False
        ),
    }
