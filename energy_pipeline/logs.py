"""Logging set-up shared by every process: key=value lines (or JSON lines) on stderr and,
when the site asks, in a size-rotated file; secrets redacted.

Secrets (B-route password, MQTT password, anything filled from ${VAR}) are registered by the
config loader; the filter scrubs them from every record, so a careless f-string in a driver can
not leak them. The formatters redact again after formatting, which also covers `fields`.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

_SECRETS: set[str] = set()
MASK = "***"


def register_secret(value: str) -> None:
    """Remember a value that must never appear in a log line (short values would mask noise)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


class KeyValueFormatter(logging.Formatter):
    """`ts level logger message k=v ...`: greppable and parseable without a JSON dependency."""

    def format(self, record: logging.LogRecord) -> str:
        base = (
            f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname:<7} "
            f"{record.name} {record.getMessage()}"
        )
        fields = getattr(record, "fields", None)
        if fields:
            base += " " + " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return redact(base)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`ts`, `level`, `logger`, `message`, then the record's fields)
    for log shippers; a traceback travels in `exc` so a record stays one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if fields:
            for key, value in fields.items():
                doc.setdefault(key, _plain(value))
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str, ensure_ascii=False)


def _plain(value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def _quote(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


LogFormat = Literal["text", "json"]
PRODUCT_LOGGER = "energy_pipeline"


def component_logger(component: str) -> str:
    """`collector` -> `energy_pipeline.collector`: the config names components, not modules."""
    if component == PRODUCT_LOGGER or component.startswith(PRODUCT_LOGGER + "."):
        return component
    return f"{PRODUCT_LOGGER}.{component}"


def setup_logging(
    verbose: int = 0,
    *,
    level: str = "info",
    levels: Mapping[str, str] | None = None,
    file: Path | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
    fmt: LogFormat = "text",
) -> None:
    """Configure the root logger; `-v` overrides the configured level with debug.

    Raises OSError when `file` cannot be opened, before any handler is replaced.
    """
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else KeyValueFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = handlers
    root.setLevel(logging.DEBUG if verbose > 0 else level.upper())
    for component, chosen in (levels or {}).items():
        logging.getLogger(component_logger(component)).setLevel(chosen.upper())
    for noisy in ("pymodbus", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 else logging.CRITICAL)
