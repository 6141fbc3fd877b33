"""Requests only a patient may make to the portal, signed by the patient's wallet.

The portal has no accounts and no sessions: a request that stores bytes or removes them carries
an EIP-712 signature of the patient over what it does (`PortalRequest`), in two headers:

    X-EHR-Signature  0x… (65 bytes)       X-EHR-Expires  unix seconds, at most 10 minutes ahead

    domain   {name: "EHR portal request", version: "1", chainId, verifyingContract: RecordRegistry}
    message  PortalRequest(string action, bytes32 subject, uint64 expires)

`action` is "unpin-rotated" (subject: the record id), "store-package" or "store-key-share"
(subject: sha256 of the body). Another site in the patient's browser cannot make one (it has no
signature), and a signature names one action on one subject on one deployment for minutes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils import to_checksum_address

from ehr_client.errors import AccessDenied

DOMAIN_NAME = "EHR portal request"
MAX_LIFETIME = 600
CLOCK_SKEW = 60
TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "PortalRequest": [
        {"name": "action", "type": "string"},
        {"name": "subject", "type": "bytes32"},
        {"name": "expires", "type": "uint64"},
    ],
}


def typed_data(*, chain_id: int, registry: str, action: str, subject: bytes, expires: int) -> dict[str, Any]:
    return {
        "types": TYPES,
        "primaryType": "PortalRequest",
        "domain": {"name": DOMAIN_NAME, "version": "1", "chainId": chain_id,
                   "verifyingContract": to_checksum_address(registry)},
        "message": {"action": action, "subject": "0x" + subject.hex(), "expires": expires},
    }


def check_signed(headers: Mapping[str, str], *, chain_id: int, registry: str, action: str, subject: bytes,
                 signer: str, now: float | None = None) -> None:
    """That `signer` (the patient the request concerns) signed this request and it has not expired.

    Raises:
        AccessDenied: no signature, an expired or too distant one, or another signer's.
    """
    signature, expires_text = headers.get("x-ehr-signature"), headers.get("x-ehr-expires")
    what = f"only the patient may {action.replace('-', ' ')} here: the page asks the wallet to sign the request"
    if not signature or not expires_text or not expires_text.isdigit() or len(expires_text) > 12:
        raise AccessDenied(f"{what} (X-EHR-Signature and X-EHR-Expires are missing or malformed)")
    expires = int(expires_text)
    now = time.time() if now is None else now
    if not now < expires <= now + MAX_LIFETIME + CLOCK_SKEW:
        raise AccessDenied(f"{what}; this signature has expired or is dated too far ahead: sign again")
    document = typed_data(chain_id=chain_id, registry=registry, action=action, subject=subject, expires=expires)
    try:
        recovered = Account.recover_message(encode_typed_data(full_message=document), signature=signature)
    except (BadSignature, ValueError, TypeError):
        raise AccessDenied(f"{what}; the signature does not verify") from None
    if recovered != to_checksum_address(signer):
        raise AccessDenied(f"{what}; it was signed by {recovered}, not by the patient {to_checksum_address(signer)}")
