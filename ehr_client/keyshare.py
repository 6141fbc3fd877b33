"""Key shares: data keys of a patient's records sealed to one grantee, handed over with a grant.

A share is stored as a blob and its CID travels with the grant (or the signed consent the
relayer submits). It holds only record ids, key versions and sealed data keys, so storing it on
a public IPFS node reveals nothing the chain does not already show. Whether the grantee may use
it is decided on chain at read time: the reader must pass `canRead` and emit `AccessRequested`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

from eth_utils import is_address, to_checksum_address

from ehr_client._json import load_untrusted
from ehr_client.crypto import WRAPPED_KEY_SIZE
from ehr_client.errors import InvalidRecord

FORMAT = "ehr-keyshare/1"
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class ShareEntry:
    record_id: bytes
    version: int
    key_version: int
    wrapped: bytes


@dataclass(frozen=True)
class KeyShare:
    patient: str
    grantee: str
    entries: tuple[ShareEntry, ...]

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "patient": self.patient,
                "grantee": self.grantee,
                "entries": [
                    {"record": "0x" + e.record_id.hex(), "version": e.version, "keyVersion": e.key_version,
                     "wrapped": "0x" + e.wrapped.hex()}
                    for e in self.entries
                ],
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyShare:
        """Parse an untrusted share; anything malformed raises InvalidRecord."""
        try:
            doc = load_untrusted(data, max_depth=4, max_bytes=64 * 1024 * 1024)
            if doc.get("format") != FORMAT or not is_address(doc["patient"]) or not is_address(doc["grantee"]):
                raise ValueError("not a key share")
            raw_entries = doc["entries"]
            if not isinstance(raw_entries, list) or len(raw_entries) > MAX_ENTRIES:
                raise ValueError("bad entries")
            entries = []
            for item in raw_entries:
                record_id = bytes.fromhex(str(item["record"]).removeprefix("0x"))
                wrapped = bytes.fromhex(str(item["wrapped"]).removeprefix("0x"))
                version, key_version = int(item["version"]), int(item["keyVersion"])
                if len(record_id) != 32 or len(wrapped) != WRAPPED_KEY_SIZE or version < 1 or key_version < 1:
                    raise ValueError("bad entry")
                entries.append(ShareEntry(record_id, version, key_version, wrapped))
            if len({e.record_id for e in entries}) != len(entries):
                raise ValueError("a record named twice")
            return cls(to_checksum_address(doc["patient"]), to_checksum_address(doc["grantee"]), tuple(entries))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, OverflowError):
            raise InvalidRecord("the key share is malformed; ask the patient to share the keys again") from None

    def entry_for(self, record_id: bytes) -> ShareEntry | None:
        return next((e for e in self.entries if e.record_id == record_id), None)

    def without(self, record_ids: Collection[bytes]) -> KeyShare:
        """The same share minus the entries of `record_ids` (erasure re-issues shares this way)."""
        return KeyShare(self.patient, self.grantee, tuple(e for e in self.entries if e.record_id not in record_ids))
