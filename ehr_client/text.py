"""Short, human forms of ids, addresses and times, shared by the CLI and the demo."""

from __future__ import annotations

from datetime import datetime, timezone


def short(value: str | bytes | None, *, keep: int = 6) -> str:
    """0x1234ab…cdef for addresses, hashes and ids; the full value stays in --json output."""
    if value is None:
        return "-"
    text = "0x" + value.hex() if isinstance(value, bytes) else value
    return text if len(text) <= 2 * keep + 3 else f"{text[:keep + 2]}…{text[-4:]}"


def when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
