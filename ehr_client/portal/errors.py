"""Errors of the portal's API, each under the `ehr_client.errors` class it resembles."""

from __future__ import annotations

from ehr_client.errors import ConfigError, EHRError


class MethodRefused(EHRError, PermissionError):
    """A JSON-RPC method the portal does not pass through (only chain reads and raw transactions)."""


class RequestTooLarge(EHRError, ValueError):
    """A request body, or a blob asked for, over the portal's size limit."""


class NoRelayer(ConfigError):
    """The portal was started without a relayer wallet, so it cannot pay for signed consent."""
