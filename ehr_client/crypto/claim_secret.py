"""The secret a record's readers prove its claims with, derived from the record's data key.

Whoever can decrypt a record version can derive it, and no one else: the claim commitment's salt
comes from it (`ehr_client.claims`), so proving needs no extra key material in the package.
"""

from __future__ import annotations

import hashlib
import hmac

_LABEL = b"ehr-claim-secret/1"


def claim_secret(data_key: bytes, record_id: bytes) -> bytes:
    """32 bytes bound to the data key and the record id (HMAC-SHA256)."""
    return hmac.new(bytes(data_key), _LABEL + bytes(record_id), hashlib.sha256).digest()
