"""Turn command-line text into addresses, record ids, CIDs, scopes and times (BadParameter on error)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import typer
from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

from ehr_client.cli._context import AppContext
from ehr_client.cli._settings import WALLET_NAME
from ehr_client.errors import EHRError, InvalidRecord
from ehr_client.records import Scope, parse_scopes
from ehr_client.storage import Cid
from ehr_client.storage.cid import decode_cid

_DURATION = re.compile(r"(?P<n>\d+)\s*(?P<unit>s|m|h|d|w)?", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_RECORD_ID = re.compile(r"(0x)?[0-9a-fA-F]{64}")


def checksummed(text: str) -> str | None:
    """The EIP-55 spelling of `0x` + 40 hex digits, or None if `text` is not that shape.

    All-lowercase and all-uppercase digits carry no checksum and are accepted; mixed case is a
    checksum and must be right, since a wrong one is how a mistyped address shows itself.
    """
    value = text.strip()
    if not is_hex_address(value) or not value.startswith(("0x", "0X")):
        return None
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise typer.BadParameter(
            f"{value} fails its EIP-55 checksum (mixed case must match it): one digit may be mistyped. "
            f"Check it against its source; the checksummed spelling of these digits is {to_checksum_address(value)}"
        )
    return str(to_checksum_address(value))


def address(app: AppContext, text: str) -> str:
    """A checksummed address from `0x…` or the name of a wallet kept under this --home."""
    value = text.strip()
    found_address = checksummed(value)
    if found_address is not None:
        return found_address
    found = None
    if WALLET_NAME.fullmatch(value):
        try:
            found = app.wallet_address(value)
        except EHRError:
            found = None
    if found is None:
        raise typer.BadParameter(f"{text!r} is neither an address (0x + 40 hex digits) nor a wallet under this --home")
    return found


def record_id(text: str) -> bytes:
    value = text.strip()
    if not _RECORD_ID.fullmatch(value):
        raise typer.BadParameter(f"{text!r} is not a record id (0x + 64 hex digits, as `ehr record list` shows)")
    return bytes.fromhex(value.removeprefix("0x"))


def cid(text: str) -> Cid:
    try:
        decode_cid(text.strip())
    except InvalidRecord as exc:
        raise typer.BadParameter(str(exc)) from None
    return Cid(text.strip())


def scopes(text: str) -> Scope:
    try:
        return parse_scopes(text)
    except InvalidRecord as exc:
        raise typer.BadParameter(str(exc)) from None


def duration(text: str) -> int:
    """Seconds from "90", "90s", "30m", "24h", "7d" or "2w"."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group("n")) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration: use e.g. 3600, 30m, 24h, 7d")
    return int(match.group("n")) * _UNIT_SECONDS[(match.group("unit") or "s").lower()]


def timestamp(text: str) -> int:
    """Unix seconds from an integer or an ISO 8601 time (UTC when it has no offset)."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time: use ISO 8601 (2030-01-31T12:00Z) or unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())
