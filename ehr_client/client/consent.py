"""A patient's signed consent (EIP-712 grant or revocation) as a document anyone may relay."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ehr_client._json import load_untrusted
from ehr_client.chain.eip712 import Domain, GrantMessage, RevokeMessage, parse_typed_data, rebuild_typed_data
from ehr_client.errors import InvalidRecord
from ehr_client.storage import Cid


@dataclass(frozen=True)
class SignedConsent:
    """A patient's signed grant or revocation, ready for anyone to relay; carries the key share.

    `typed_data` is exactly what the wallet signed (`eth_signTypedData_v4`), rebuilt from its
    checked fields; `domain` and `message` are those fields.
    """

    typed_data: dict[str, Any]
    signature: bytes
    key_share: Cid | None = None

    @property
    def domain(self) -> Domain:
        return parse_typed_data(self.typed_data)[0]

    @property
    def message(self) -> GrantMessage | RevokeMessage:
        return parse_typed_data(self.typed_data)[1]

    def to_json(self) -> str:
        return json.dumps(
            {"typedData": self.typed_data, "signature": "0x" + self.signature.hex(), "keyShare": self.key_share},
            indent=2,
        )

    @classmethod
    def from_parts(cls, typed_data: object, signature: str, key_share: object = None) -> SignedConsent:
        """A consent from typed data and a signature made elsewhere (a browser or hardware wallet).

        Raises:
            InvalidRecord: the typed data is not one of our Grant or Revoke documents, the signature
                is not 65 bytes of hex, or the key share is not a string.
        """
        domain, message = parse_typed_data(typed_data)
        try:
            raw = bytes.fromhex(signature.removeprefix("0x"))
        except (ValueError, AttributeError):
            raw = b""
        if len(raw) != 65:
            raise InvalidRecord("the signature must be 65 bytes of hex (0x…, 130 hex digits), as the wallet returned it")
        if not (key_share is None or isinstance(key_share, str)):
            raise InvalidRecord("keyShare must be a CID string")
        return cls(rebuild_typed_data(domain, message), raw, None if key_share is None else Cid(key_share))

    @classmethod
    def from_json(cls, text: str, *, signature: str | None = None) -> SignedConsent:
        """Parse a consent file: `{"typedData", "signature", "keyShare"}` as `--sign-only` writes it,
        or bare typed data (as `--print-typed-data` prints it) with `signature` given separately,
        which then replaces any signature in the file.

        Raises:
            InvalidRecord: anything else; the message says what is wrong.
        """
        try:
            doc = load_untrusted(text, max_depth=8, max_bytes=1024 * 1024)
        except ValueError:
            raise InvalidRecord("the consent file is not JSON; use the file `ehr grant --sign-only` wrote") from None
        if isinstance(doc, dict) and "typedData" in doc:
            given = signature if signature is not None else doc.get("signature")
            if not isinstance(given, str):
                raise InvalidRecord("the consent file has no signature; pass the wallet's with --signature 0x…")
            return cls.from_parts(doc["typedData"], given, doc.get("keyShare"))
        if signature is None:
            raise InvalidRecord("this file is typed data without a signature; pass the wallet's with --signature 0x…")
        return cls.from_parts(doc, signature)
