"""A patient's signed consent (EIP-712 grant or revocation) as a document anyone may relay."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ehr_client._json import load_untrusted
from ehr_client.errors import InvalidRecord
from ehr_client.storage import Cid

_CONSENT_FIELDS = {
    "Grant": {"patient", "grantee", "scopes", "access", "expiresAt", "nonce", "deadline"},
    "Revoke": {"patient", "grantee", "nonce", "deadline"},
}


@dataclass(frozen=True)
class SignedConsent:
    """A patient's signed grant or revocation, ready for anyone to relay; carries the key share."""

    typed_data: dict[str, Any]
    signature: bytes
    key_share: Cid | None = None

    def to_json(self) -> str:
        return json.dumps(
            {"typedData": self.typed_data, "signature": "0x" + self.signature.hex(), "keyShare": self.key_share},
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> SignedConsent:
        """Parse a consent document from a relayer or a file; anything but a grant or revocation
        with all its fields and a 65-byte signature raises InvalidRecord."""
        try:
            doc = load_untrusted(text, max_depth=8, max_bytes=1024 * 1024)
            typed, message = doc["typedData"], doc["typedData"]["message"]
            fields = _CONSENT_FIELDS[typed["primaryType"]]
            if not isinstance(message, dict) or not fields <= message.keys() or not isinstance(typed["domain"], dict):
                raise ValueError("incomplete consent message")
            signature = bytes.fromhex(str(doc["signature"]).removeprefix("0x"))
            share = doc.get("keyShare")
            if len(signature) != 65 or not (share is None or isinstance(share, str)):
                raise ValueError("bad signature or key share")
            return cls(typed, signature, Cid(share) if share is not None else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InvalidRecord(
                "not a signed consent document (expected typedData of a Grant or Revoke, a 65-byte signature, "
                "keyShare); ask the patient to sign again"
            ) from None

