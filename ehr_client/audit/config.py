"""Monitor configuration: rule thresholds, webhook and polling, from a TOML or JSON file.

Example (TOML)::

    [working_hours]          # reads outside these hours raise an alert
    start = "08:00"
    end = "18:00"            # an end before the start means a night shift (e.g. 20:00-06:00)
    timezone = "Europe/Berlin"
    days = ["mon", "tue", "wed", "thu", "fri"]

    [read_burst]             # more than max_reads reads by one member within window_seconds
    max_reads = 20
    window_seconds = 3600

    [read_after_revoke]      # a read or attempted read within within_seconds of a revocation
    within_seconds = 3600

    [break_glass]            # any break-glass request, confirmation (and emergency read)
    include_reads = true

    [suspended_activity]     # any transaction by a member suspended at that block
    [failed_attempts]        # any reverted transaction against the contracts

    [webhook]
    url = "https://siem.example.org/hooks/ehr"
    timeout_seconds = 5
    retries = 3

    [monitor]
    poll_seconds = 2
    confirmations = 0

Every table has `enabled = true|false`. Unknown keys are refused, so a typo never silently
disables a rule.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ehr_client.errors import ConfigError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WorkingHours:
    enabled: bool = True
    start: str = "08:00"
    end: str = "18:00"
    timezone: str = "UTC"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    events: tuple[str, ...] = ("AccessRequested",)
    include_patients: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def start_time(self) -> time:
        return time.fromisoformat(self.start)

    @property
    def end_time(self) -> time:
        return time.fromisoformat(self.end)

    @property
    def weekdays(self) -> frozenset[int]:
        return frozenset(DAY_NAMES.index(day) for day in self.days)


@dataclass(frozen=True)
class ReadBurst:
    enabled: bool = True
    max_reads: int = 20
    window_seconds: int = 3600


@dataclass(frozen=True)
class BreakGlass:
    enabled: bool = True
    include_reads: bool = True


@dataclass(frozen=True)
class ReadAfterRevoke:
    enabled: bool = True
    within_seconds: int = 3600


@dataclass(frozen=True)
class SuspendedActivity:
    enabled: bool = True


@dataclass(frozen=True)
class FailedAttempts:
    enabled: bool = True


@dataclass(frozen=True)
class Webhook:
    url: str | None = None
    timeout_seconds: float = 5.0
    retries: int = 3
    backoff_seconds: float = 0.5


@dataclass(frozen=True)
class Polling:
    poll_seconds: float = 2.0
    confirmations: int = 0
    max_blocks_per_step: int = 1000
    backoff_max_seconds: float = 30.0


@dataclass(frozen=True)
class MonitorConfig:
    working_hours: WorkingHours = field(default_factory=WorkingHours)
    read_burst: ReadBurst = field(default_factory=ReadBurst)
    break_glass: BreakGlass = field(default_factory=BreakGlass)
    read_after_revoke: ReadAfterRevoke = field(default_factory=ReadAfterRevoke)
    suspended_activity: SuspendedActivity = field(default_factory=SuspendedActivity)
    failed_attempts: FailedAttempts = field(default_factory=FailedAttempts)
    webhook: Webhook = field(default_factory=Webhook)
    monitor: Polling = field(default_factory=Polling)

    def with_webhook(self, url: str | None) -> MonitorConfig:
        return self if url is None else replace(self, webhook=replace(self.webhook, url=url))


def _section(cls: type[Any], name: str, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"monitor config: [{name}] must be a table of settings")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"monitor config: [{name}] has unknown settings {', '.join(unknown)}; "
                          f"known: {', '.join(known)}")
    values: dict[str, Any] = {}
    defaults = cls()
    for key, value in data.items():
        default = getattr(defaults, key)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        elif isinstance(default, tuple):
            ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
            value = tuple(value) if ok else value
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(f"monitor config: [{name}] {key} = {value!r} has the wrong type or is negative "
                              f"(expected something like {default!r})")
        values[key] = value
    return cls(**values)


def _check(config: MonitorConfig) -> MonitorConfig:
    hours = config.working_hours
    try:
        hours.start_time, hours.end_time  # noqa: B018
    except ValueError:
        raise ConfigError(f"monitor config: working hours {hours.start!r}-{hours.end!r} must be HH:MM") from None
    try:
        hours.zone  # noqa: B018
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"monitor config: unknown timezone {hours.timezone!r}; use an IANA name such as "
                          "Europe/Berlin or UTC") from None
    bad_days = [d for d in hours.days if d not in DAY_NAMES]
    if bad_days:
        raise ConfigError(f"monitor config: unknown days {bad_days}; use {', '.join(DAY_NAMES)}")
    if config.read_burst.window_seconds <= 0:
        raise ConfigError("monitor config: read_burst.window_seconds must be positive")
    url = config.webhook.url
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"monitor config: webhook url {url!r} must start with http:// or https://")
    return config


def config_from_mapping(data: Mapping[str, Any]) -> MonitorConfig:
    """A validated MonitorConfig from parsed TOML/JSON; missing sections take their defaults."""
    known = {f.name: f for f in fields(MonitorConfig)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"monitor config: unknown sections {', '.join(unknown)}; known: {', '.join(known)}")
    defaults = MonitorConfig()
    sections = {name: _section(type(getattr(defaults, name)), name, value) for name, value in data.items()}
    return _check(replace(defaults, **sections))


def load_config(path: Path) -> MonitorConfig:
    """Read a monitor config from a .toml or .json file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the monitor config {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if Path(path).suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"the monitor config {path} is not valid {Path(path).suffix or 'TOML'}: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"the monitor config {path} must be a table of sections")
    return config_from_mapping(data)
