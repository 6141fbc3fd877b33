"""Errors of the portal's API, each under the `ehr_client.errors` class it resembles."""

from __future__ import annotations

from ehr_client.errors import ConfigError, EHRError


class MethodRefused(EHRError, PermissionError):
    """A JSON-RPC method the portal does not pass through (only chain reads and raw transactions)."""


class RequestTooLarge(EHRError, ValueError):
    """A request body, or a blob asked for, over the portal's size limit."""


class NoRelayer(ConfigError):
    """The portal was started without a relayer wallet, so it cannot pay for signed consent."""


class UnsupportedContentType(EHRError, ValueError):
    """A POST whose Content-Type is not the one the endpoint takes. Requiring it also keeps other
    web pages out: a browser sends them cross-origin only after a preflight the portal never allows."""


class UntrustedHost(EHRError, PermissionError):
    """A request naming a host the portal does not serve as (DNS rebinding from another site)."""


class TooManyRequests(EHRError, RuntimeError):
    """The relayer's limit for one patient was reached (it pays for every relayed consent)."""


class UnknownCustodian(EHRError, LookupError):
    """A custodian address (or action) the portal does not forward to."""
