"""Errors of audited key release, each under the `ehr_client.errors` class it resembles."""

from __future__ import annotations

from collections.abc import Mapping

from ehr_client.errors import AccessDenied, EHRError


class CustodianUnavailable(EHRError, ConnectionError):
    """Too few key custodians answered to reach the threshold (down, unreachable, timing out)."""


class CustodianRefused(AccessDenied):
    """One custodian refused a request after checking the chain; `reason` is a stable code.

    Reasons: no-grant, grant-expired, record-unknown, record-erased, no-access-request,
    stale-access-request, access-request-used, bad-signature, wrong-custodian, expired-request,
    replayed-request, not-enrolled, already-enrolled, not-a-member, mfa-failed, mfa-replayed,
    mfa-locked, mfa-required, no-fragment, not-patient, bad-fragment, malformed, rate-limited,
    too-large; and, raised on
    the grantee's side, invalid-fragment (a fragment that fails verification).
    """

    def __init__(self, reason: str, message: str, *, custodian: str | None = None) -> None:
        super().__init__(f"{custodian}: {message}" if custodian else message)
        self.reason = reason
        self.detail = message
        self.custodian = custodian
        self.signer: str | None = None
        """On the custodian's side: whose verified signature the refused request carried (None:
        refused before any signature was verified, so nobody can be held to it)."""


class KeyReleaseDenied(AccessDenied):
    """Fewer than the threshold of custodians released a fragment, and enough of them refused.

    `refusals` maps each refusing custodian to its reason code.
    """

    def __init__(self, message: str, *, refusals: Mapping[str, str]) -> None:
        super().__init__(message)
        self.refusals = dict(refusals)
