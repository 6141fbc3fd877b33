"""The second factor: RFC 6238 TOTP (SHA-1, 6 digits, 30 s), one secret per grantee per custodian.

A code is accepted for the current time step or one step either side (clock skew), and each
time step at most once per grantee: the custodian remembers the last step it accepted.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyotp

from ehr_client.errors import ConfigError, KeyNotFound

WINDOW = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, grantee: str, custodian: str) -> str:
    """An otpauth:// URI for authenticator apps; names only addresses, never a person."""
    return pyotp.TOTP(secret).provisioning_uri(name=grantee, issuer_name=f"EHR custodian {custodian}")


def matching_step(secret: str, code: str, *, now: float) -> int | None:
    """The time step whose code is `code`, within the accepted window, or None."""
    if not (isinstance(code, str) and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


@dataclass
class TotpDevice:
    """What an authenticator app holds for one grantee: a secret per custodian address.

    For scripts, tests and demos; people scan the provisioning URIs into their app instead.
    """

    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def add(self, custodian: str, uri: str) -> None:
        try:
            parsed = pyotp.parse_uri(uri)
        except ValueError:
            parsed = None
        if not isinstance(parsed, pyotp.TOTP):
            raise ConfigError("not a TOTP provisioning URI (otpauth://totp/...)")
        self.secrets[custodian] = parsed.secret

    def add_all(self, uris: Mapping[str, str]) -> None:
        for custodian, uri in uris.items():
            self.add(custodian, uri)

    def code(self, custodian: str, *, now: float | None = None) -> str:
        if custodian not in self.secrets:
            raise KeyNotFound(f"no TOTP secret for custodian {custodian}; enroll with it first")
        totp = pyotp.TOTP(self.secrets[custodian])
        return totp.now() if now is None else totp.at(now)
