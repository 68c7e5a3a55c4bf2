"""The front door: each verb parses its arguments and calls one function elsewhere.

Exit codes: 0 success, 1 a failed operation, 2 bad usage or bad config. Data goes to stdout
(`--json` for machines), logs to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

from energy_pipeline import __version__
from energy_pipeline.config import Config, json_schema, load_config
from energy_pipeline.logs import setup_logging
from energy_pipeline.yamlfile import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _config(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "file", None) or args.config)


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
    from energy_pipeline.transforms.exports import export_range

    config = _config(args)
    last = args.to or args.from_
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


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from energy_pipeline.transforms.warehouse import query, render

    config = _config(args)
    try:
        header, rows = query(config.data_dir, args.query)
    except (FileNotFoundError, duckdb.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(render(header, rows, "json" if args.json else "csv" if args.csv else "table"))
    return EXIT_OK


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


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
        "export", parents=[common], help="write the PROGNOZA and logger CSVs for local days"
    )
    export.add_argument("--from", dest="from_", type=_date, required=True, metavar="DATE")
    export.add_argument("--to", type=_date, metavar="DATE", help="last day (default: --from)")
    export.add_argument("--device", metavar="ID", help="only this device")
    export.set_defaults(func=cmd_export)

    sql = verbs.add_parser("sql", parents=[common], help="query the DuckDB warehouse (read-only)")
    sql.add_argument("query", help='e.g. "SELECT * FROM daily_device_summary"')
    sql.add_argument("--csv", action="store_true", help="CSV on stdout")
    sql.set_defaults(func=cmd_sql)

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
