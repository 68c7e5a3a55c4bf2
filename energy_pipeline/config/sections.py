"""Site-wide sections: site, storage, the collector's and the pipeline's settings."""

from __future__ import annotations

import zoneinfo
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from energy_pipeline.config.base import DEVICE_ID_PATTERN, Strict

AUTO_WORKERS_FROM = 200
"""`collector.workers: auto` splits polling over the cores from this many devices on; below
it one process keeps the lighter footprint."""
MAX_WORKERS = 64


class Site(Strict):
    name: str = "site"
    timezone: str = "UTC"
    country: str | None = Field(
        None, description="ISO 3166 country code for the holiday calendar feature, e.g. DE"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; expected an IANA name such as Europe/Berlin"
            ) from None
        return value


class Storage(Strict):
    data_dir: Path = Field(Path("data"), description="relative to the config file's folder")


class Pipeline(Strict):
    """How Dagster turns the raw lake into tables: windows, automation, retention."""

    minute_window_days: int = Field(
        35, ge=1, le=60, description="days of minute partitions Dagster tracks (rolling window)"
    )
    history_start: date = Field(
        date(2024, 1, 1), description="first day of the daily partitions (local date)"
    )
    sensor_interval_seconds: int = Field(
        300, ge=30, le=3600, description="how often the sensor looks for newly sealed minutes"
    )
    max_minutes_per_run: int = Field(
        1440, ge=1, le=1440, description="cap on the minutes one sensor run covers"
    )
    daily_schedule_minute: int = Field(
        20, ge=0, le=59, description="minute past local midnight the daily schedule fires"
    )
    raw_freshness_minutes: int = Field(
        10, ge=1, le=1440, description="raw_readings turns red when no minute sealed this long"
    )
    compaction_grace_hours: int = Field(
        2, ge=1, le=168, description="an hour is compacted once sealed this long ago"
    )
    raw_retention_days: int | None = Field(None, ge=1, description="delete older raw; none: keep")
    minute_retention_days: int | None = Field(
        None, ge=1, description="delete older minute_readings; none: keep"
    )
    export_retention_days: int = Field(30, ge=1, description="delete older CSV exports")
    run_history_days: int = Field(14, ge=1, description="delete Dagster runs older than this")
    forecast_targets: dict[str, str] = Field(
        default_factory=dict,
        description="device id -> metric forecast; default: its energy counter, else its power",
    )


class CollectorSettings(Strict):
    """The `collector:` section: how the long-running collector lands readings in the lake."""

    id: str = Field(
        "main",
        pattern=DEVICE_ID_PATTERN,
        max_length=64,
        description="names this collector's lake files and status; unique per lake",
    )
    seal_delay: float = Field(
        5.0, ge=0, le=600, description="seconds after a minute ends before it is sealed"
    )
    commit_wait: float = Field(
        0.8,
        gt=0,
        le=60,
        description="longest a tick waits for slow devices before its group commit "
        "(capped at 0.8 x the shortest interval); late polls join the next commit",
    )
    max_pending_mb: float = Field(
        256.0,
        gt=0,
        description="readings kept in memory while the data directory refuses writes",
    )
    backoff_initial: float = Field(2.0, gt=0, le=3600, description="seconds, second failure")
    backoff_max: float = Field(300.0, gt=0, le=86400, description="seconds, cap of the backoff")
    wal_dir: Path | None = Field(
        None,
        description="write-ahead log folder; default <data_dir>/state/wal-<id> "
        "(a worker's: <wal_dir>/<id>-w<N>, default <data_dir>/state/wal-<id>-w<N>)",
    )
    workers: int | Literal["auto"] = Field(
        "auto",
        description="poller processes: a number 1-64, or auto (1 below "
        f"{AUTO_WORKERS_FROM} devices, else one per core)",
    )

    @field_validator("id")
    @classmethod
    def _not_a_worker_id(cls, value: str) -> str:
        head, sep, tail = value.rpartition("-w")
        if sep and head and tail.isdigit():
            raise ValueError("ids ending in -w<N> name worker processes; expected another id")
        return value

    @field_validator("workers")
    @classmethod
    def _worker_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= MAX_WORKERS:
            raise ValueError(f"expected auto or a number from 1 to {MAX_WORKERS}")
        return value
