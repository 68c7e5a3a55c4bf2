"""The front door: each verb parses its arguments and calls one function elsewhere.

Exit codes: 0 success, 1 a failed operation, 2 bad usage or bad config. Data goes to stdout
(`--json` for machines), logs to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from energy_pipeline import __version__
from energy_pipeline.config import DEVICE_ID_PATTERN, Config, json_schema, load_config
from energy_pipeline.logs import setup_logging
from energy_pipeline.yamlfile import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _config(args: argparse.Namespace, *, log_file_allowed: bool = True) -> Config:
    """The site config, with its `logging:` section applied to this process (a collector
    worker leaves `logging.file` to its parent: one writer rotates the file)."""
    config = load_config(getattr(args, "file", None) or args.config)
    settings = config.logging
    log_file = config.resolve(settings.file) if settings.file and log_file_allowed else None
    try:
        setup_logging(
            args.verbose,
            level=settings.level,
            levels=settings.levels,
            file=log_file,
            max_bytes=settings.max_bytes,
            backups=settings.backups,
            fmt=settings.format,
        )
    except OSError as exc:
        print(f"error: {config.path}: logging.file: cannot open {log_file}: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None
    return config


def cmd_config_validate(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.json:
        emit_json({"ok": True, "file": str(config.path), "devices": len(config.devices)})
    else:
        print(f"{config.path}: OK ({len(config.devices)} devices, site {config.site.name})")
    return EXIT_OK


def cmd_config_schema(args: argparse.Namespace) -> int:
    emit_json(json_schema())
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from energy_pipeline.console.export import export_range

    config = _config(args)
    last = args.to or args.from_
    if args.target == "influxdb":
        return _export_influxdb(config, args, last)
    try:
        written, empty = export_range(config, args.from_, last, args.device)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        emit_json({"written": [str(p) for p in written], "days_without_data": empty})
    else:
        for path in written:
            print(path)
    for day in empty:
        print(f"warning: no readings for {day} in {config.data_dir}", file=sys.stderr)
    return EXIT_OK if written else EXIT_FAILED


def _export_influxdb(config: Config, args: argparse.Namespace, last: date) -> int:
    from energy_pipeline.live.influxexport import ExportFailed, export_influxdb

    if config.outputs.influxdb is None:
        print(
            f"error: {config.path}: outputs.influxdb: required key is missing; "
            "expected the InfluxDB to write to (url, api, database or org/bucket/token)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.device and args.device not in {d.id for d in config.devices}:
        return _unknown_device(config, args.device)
    try:
        summary = export_influxdb(
            config, args.from_, last, args.device, args.table, args.measurement
        )
    except ExportFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        emit_json(vars(summary))
    else:
        print(f"{summary.points} points written in {summary.requests} requests")
    return EXIT_OK


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from energy_pipeline.catalog import build_catalog
    from energy_pipeline.catalog.tables import sql_tables
    from energy_pipeline.lake.warehouse import query
    from energy_pipeline.transforms.warehouse import TABLES, render

    config = _config(args)
    try:
        header, rows = query(config.data_dir, args.query, TABLES, sql_tables(build_catalog(config)))
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(render(header, rows, "json" if args.json else "csv" if args.csv else "table"))
    return EXIT_OK


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def cmd_collect(args: argparse.Namespace) -> int:
    from energy_pipeline.collector.imports import refuse_unused

    refuse_unused()
    from energy_pipeline.ops.vpn.manager import collector_routes

    config = _config(args, log_file_allowed=args.worker is None)
    if args.worker is not None:  # a worker serves no live output: its parent does
        from energy_pipeline.collector.workers import run_worker

        index, count = args.worker
        return run_worker(config, index, count, args.link_fd, collector_routes)
    from energy_pipeline.collector.collect import run_collect
    from energy_pipeline.live import build_sinks

    return run_collect(config, build_sinks, collector_routes, verbose=args.verbose)


def _worker(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"expected INDEX/COUNT, got {text!r}")
    return int(index), int(count)


def cmd_status(args: argparse.Namespace) -> int:
    from energy_pipeline.collector.status import show_status

    config = _config(args)
    if args.check:
        from datetime import UTC, datetime

        from energy_pipeline.ops.healthcheck import check_fresh

        code, line = check_fresh(config, datetime.now(UTC), args.max_age)
        print(line, file=sys.stdout if code == EXIT_OK else sys.stderr)
        return code
    return show_status(config, args.json)


def _installer(args: argparse.Namespace) -> Any:
    from energy_pipeline.ops.systemd import installer_for

    return installer_for(
        _config(args),
        user_mode=args.user,
        chosen_dir=args.unit_dir,
        dry_run=args.dry_run,
        env_file=args.env_file,
        run_as=args.run_as,
    )


def cmd_service_install(args: argparse.Namespace) -> int:
    from energy_pipeline.ops.units import PlanError

    try:
        installer = _installer(args)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return EXIT_OK if installer.install() else EXIT_FAILED
    except OSError as exc:
        print(f"error: {exc} (system units need root; or --user)", file=sys.stderr)
        return EXIT_FAILED


def cmd_service_uninstall(args: argparse.Namespace) -> int:
    return EXIT_OK if _installer(args).uninstall() else EXIT_FAILED


def cmd_service_status(args: argparse.Namespace) -> int:
    from energy_pipeline.ops.systemd import service_status

    return service_status(args.user, args.json)


def cmd_simulate_history(args: argparse.Namespace) -> int:
    from energy_pipeline.simulators.history import simulate_history

    if args.days <= 0:
        print("error: --days must be positive", file=sys.stderr)
        return EXIT_USAGE
    if not re.fullmatch(DEVICE_ID_PATTERN, args.id):
        print(f"error: --id {args.id!r} must match {DEVICE_ID_PATTERN}", file=sys.stderr)
        return EXIT_USAGE
    result = simulate_history(_config(args), args.days, collector_id=args.id)
    summary = {
        "collector_id": args.id,
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "devices": result.devices,
        "readings": result.readings,
        "invalid_dropped": result.invalid,
        "files": result.files,
        "seconds": round(result.seconds, 2),
    }
    if args.json:
        emit_json(summary)
    else:
        print(
            f"{result.readings} readings of {result.devices} devices from {summary['start']} "
            f"to {summary['end']} in {result.files} files ({result.seconds:.1f} s)"
        )
    return EXIT_OK


def cmd_poll_once(args: argparse.Namespace) -> int:
    from energy_pipeline.console.poll import poll_once
    from energy_pipeline.ops.vpn.manager import tunnels_for_call

    config = _config(args)
    if args.device and args.device not in {d.id for d in config.devices}:
        return _unknown_device(config, args.device)
    devices = [config.device(args.device)] if args.device else config.devices
    with tunnels_for_call(config, devices, "poll-once") as unreachable:
        return poll_once(config, args.device, args.json, unreachable)


def cmd_health(args: argparse.Namespace) -> int:
    from energy_pipeline.console.health import health
    from energy_pipeline.ops.vpn.manager import tunnels_for_call

    config = _config(args)
    if args.device and args.device not in {d.id for d in config.devices}:
        return _unknown_device(config, args.device)
    devices = [config.device(args.device)] if args.device else config.devices
    with tunnels_for_call(config, devices, "health") as unreachable:
        return health(config, args.device, args.http or [], args.json, unreachable)


def cmd_vpn(args: argparse.Namespace) -> int:
    from energy_pipeline.ops.vpn import verbs

    run = {"up": verbs.vpn_up, "down": verbs.vpn_down, "status": verbs.vpn_status}
    return run[args.vpn_verb](_config(args), args.name, args.json)


def cmd_profiles(args: argparse.Namespace) -> int:
    from energy_pipeline.console.profiles import list_profiles

    return list_profiles(args.json)


def cmd_simulate(args: argparse.Namespace) -> int:
    from energy_pipeline.simulators.serve import run_simulate

    return run_simulate(_config(args), args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.poll_only:
        from energy_pipeline.demo.table import run_demo

        return run_demo(_config(args), refresh=args.refresh, duration=args.duration)
    from energy_pipeline.demo.site import run_pipeline_demo

    return run_pipeline_demo(
        _config(args),
        headless=args.headless,
        minutes=args.minutes,
        history_days=args.history_days,
        port=args.port,
    )


def _unknown_device(config: Config, device_id: str) -> int:
    known = ", ".join(d.id for d in config.devices) or "none"
    print(f"error: no device {device_id!r} in {config.path} (known: {known})", file=sys.stderr)
    return EXIT_USAGE


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        help="site config file (default: $ENERGY_PIPELINE_CONFIG, else ./energy-pipeline.yaml)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log detail")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="energy-pipeline",
        description="Collect energy-equipment readings into a Parquet lake; Dagster does the rest.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    cfg = verbs.add_parser("config", help="validate the config or print its JSON Schema")
    cfg_verbs = cfg.add_subparsers(dest="config_verb", required=True, metavar="ACTION")
    validate = cfg_verbs.add_parser("validate", parents=[common], help="check a config file")
    validate.add_argument("file", nargs="?", help="config file (same as --config)")
    validate.set_defaults(func=cmd_config_validate)
    schema = cfg_verbs.add_parser("schema", parents=[common], help="JSON Schema of the config")
    schema.set_defaults(func=cmd_config_schema)

    export = verbs.add_parser(
        "export",
        parents=[common],
        help="write the PROGNOZA and logger CSVs for local days, or the readings to InfluxDB",
    )
    export.add_argument(
        "target",
        nargs="?",
        choices=("csv", "influxdb"),
        default="csv",
        help="csv (default), or influxdb: the configured outputs.influxdb",
    )
    export.add_argument("--from", dest="from_", type=_date, required=True, metavar="DATE")
    export.add_argument("--to", type=_date, metavar="DATE", help="last day (default: --from)")
    export.add_argument("--device", metavar="ID", help="only this device")
    export.add_argument(
        "--table",
        choices=("raw_readings", "minute_readings"),
        default="raw_readings",
        help="influxdb: the readings to write (raw_readings)",
    )
    export.add_argument("--measurement", help="influxdb: instead of the configured measurement")
    export.set_defaults(func=cmd_export)

    sql = verbs.add_parser("sql", parents=[common], help="query the lake with DuckDB (read-only)")
    sql.add_argument("query", help='e.g. "SELECT * FROM daily_device_summary"')
    sql.add_argument("--csv", action="store_true", help="CSV on stdout")
    sql.set_defaults(func=cmd_sql)

    collect = verbs.add_parser(
        "collect", parents=[common], help="poll every device 24/7 into the raw lake"
    )
    collect.add_argument("--worker", type=_worker, help=argparse.SUPPRESS)
    collect.add_argument("--link-fd", type=int, help=argparse.SUPPRESS)
    collect.set_defaults(func=cmd_collect)
    status = verbs.add_parser("status", parents=[common], help="show the collectors' status")
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 0 while this site's collector status file is fresh, else 1 (no device I/O)",
    )
    status.add_argument(
        "--max-age",
        type=_positive,
        metavar="SECONDS",
        help="--check: oldest acceptable status (default: 3 shortest intervals, at least 30)",
    )
    status.set_defaults(func=cmd_status)
    service = verbs.add_parser("service", help="install the systemd units and see how they run")
    service_verbs = service.add_subparsers(dest="service_verb", required=True, metavar="ACTION")
    scope = argparse.ArgumentParser(add_help=False)
    scope.add_argument(
        "--user", action="store_true", help="user units (~/.config/systemd/user), not system ones"
    )
    placing = argparse.ArgumentParser(add_help=False)
    placing.add_argument(
        "--unit-dir",
        type=Path,
        metavar="DIR",
        help="only write the units into DIR (no systemctl); default: the system or user folder",
    )
    placing.add_argument("--dry-run", action="store_true", help="print what would be done")
    placing.add_argument(
        "--env-file",
        type=Path,
        metavar="FILE",
        help="secrets for ${VAR} values (default /etc/energy-pipeline/env, "
        "or ~/.config/energy-pipeline/env with --user)",
    )
    placing.add_argument(
        "--run-as", metavar="USER", help="system units: User= (default: the config file's owner)"
    )
    install = service_verbs.add_parser(
        "install",
        parents=[common, scope, placing],
        help="write the collector and Dagster units; enable and start them",
    )
    install.set_defaults(func=cmd_service_install)
    uninstall = service_verbs.add_parser(
        "uninstall", parents=[common, scope, placing], help="stop, disable and remove the units"
    )
    uninstall.set_defaults(func=cmd_service_uninstall)
    service_status = service_verbs.add_parser(
        "status", parents=[common, scope], help="per unit: active, since, restarts, last exit"
    )
    service_status.set_defaults(func=cmd_service_status)

    history = verbs.add_parser(
        "simulate-history",
        parents=[common],
        help="write N days of simulated readings into the lake",
    )
    history.add_argument("--days", type=float, required=True, help="days of history to write")
    history.add_argument("--id", default="history", help="collector id of the files")
    history.set_defaults(func=cmd_simulate_history)
    poll = verbs.add_parser("poll-once", parents=[common], help="read every device once")
    poll.add_argument("--device", metavar="ID", help="only this device")
    poll.set_defaults(func=cmd_poll_once)
    check = verbs.add_parser(
        "health", parents=[common], help="connect latency and one round trip per device"
    )
    check.add_argument("--device", metavar="ID", help="only this device")
    check.add_argument(
        "--http", metavar="URL", action="append", help="also check that URL answers (repeatable)"
    )
    check.set_defaults(func=cmd_health)
    vpn = verbs.add_parser("vpn", help="the site VPN tunnels: up, down, status")
    vpn_verbs = vpn.add_subparsers(dest="vpn_verb", required=True, metavar="ACTION")
    for action, text in (
        ("up", "start the tunnels and wait until connected (they keep running)"),
        ("down", "stop the tunnels"),
        ("status", "state, since, addresses, bytes in/out"),
    ):
        sub = vpn_verbs.add_parser(action, parents=[common], help=text)
        sub.add_argument("--name", metavar="N", help="only this tunnel (default: all)")
        sub.set_defaults(func=cmd_vpn)
    prof = verbs.add_parser("profiles", parents=[common], help="list built-in register maps")
    prof.set_defaults(func=cmd_profiles)
    sim = verbs.add_parser(
        "simulate", parents=[common], help="serve simulated devices for the config until Ctrl-C"
    )
    sim.set_defaults(func=cmd_simulate)
    demo = verbs.add_parser(
        "demo", parents=[common], help="the whole site: simulators, history, collector, Dagster UI"
    )
    demo.add_argument(
        "--refresh", type=_positive, default=5.0, metavar="SECONDS", help="poll interval (5)"
    )
    demo.add_argument(
        "--duration",
        type=_positive,
        metavar="SECONDS",
        help="stop after this long (default: Ctrl-C)",
    )
    demo.add_argument(
        "--poll-only",
        action="store_true",
        help="only the simulators, polled live in a table (no collector, no Dagster)",
    )
    demo.add_argument(
        "--headless",
        action="store_true",
        help="no UI: collect for --minutes, run the pipeline, print a summary, exit",
    )
    demo.add_argument(
        "--minutes", type=_positive, default=2.0, help="headless: minutes to collect (2)"
    )
    demo.add_argument(
        "--history-days", type=float, default=7.0, metavar="DAYS", help="simulated history (7)"
    )
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port (3000)")
    demo.set_defaults(func=cmd_demo)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    handler: Handler = args.func
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"error: invalid configuration\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) left; silence the interpreter's own flush of stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
