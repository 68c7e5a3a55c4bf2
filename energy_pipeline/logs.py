"""Logging set-up shared by every process: key=value lines on stderr, secrets redacted.

Secrets (B-route password, MQTT password, anything filled from ${VAR}) are registered by the
config loader; the filter scrubs them from every record, so a careless f-string in a driver can
not leak them.
"""

from __future__ import annotations

import logging
import sys

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


def _quote(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def setup_logging(verbose: int = 0) -> None:
    level = logging.DEBUG if verbose > 0 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pymodbus", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose > 1 else logging.CRITICAL)
