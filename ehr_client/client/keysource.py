"""Where a reader gets a record's data key: its own wrap in the keyring, a key share, or custodians.

Every key is opened with associated data built from what the chain says about the record
(`RecordInfo.binding`), never from what the blob claims, so a key sealed for one record, patient,
scope or author opens for no other. Own keys are tried under every X25519 key version the
identity holds: the label in a wrap is a hint (the on-chain version when someone else sealed it,
the keystore's when we did, and the two can drift), not a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address

from ehr_client.client.model import Identity, RecordInfo, hex_id
from ehr_client.crypto import unwrap_data_key
from ehr_client.errors import DecryptionError, IntegrityError, KeyNotFound
from ehr_client.package import PackageHeader, RecordBinding
from ehr_client.keyshare import KeyShare, ShareEntry


def check_header(info: RecordInfo, header: PackageHeader) -> RecordBinding:
    """The binding the chain gives this record version, after checking the header says the same."""
    binding = info.binding(header.version)
    if header.binding is None:
        raise IntegrityError(
            f"the stored data of record {hex_id(info.record_id)} carries no record identity; it was not written "
            "by this version of the client and is refused"
        )
    if header.binding != binding:
        raise IntegrityError(
            f"the stored data of record {hex_id(info.record_id)} was written for another record, patient, scope or "
            "author than the chain lists: it was re-listed, so nothing was decrypted or shared"
        )
    return binding


def open_sealed(identity: Identity, wrapped: bytes, key_version: int, binding: RecordBinding) -> bytes:
    """A key sealed to this identity, opened with its labelled key version first, then the others."""
    keys = identity.x25519
    ordered = [keys[key_version]] if key_version in keys else []
    ordered += [private for version, private in sorted(keys.items(), reverse=True) if version != key_version]
    aad = binding.associated_data
    for private in ordered:
        try:
            return unwrap_data_key(wrapped, private, associated_data=aad)
        except DecryptionError:
            continue
    raise DecryptionError()


def own_data_key(identity: Identity, header: PackageHeader, binding: RecordBinding) -> bytes | None:
    """The data key from this identity's wrap in the keyring, if the keyring has one for it."""
    me = bytes.fromhex(identity.address[2:])
    for wrap in header.wrap_for(me):
        return open_sealed(identity, wrap.wrapped, wrap.key_version, binding)
    return None


@dataclass(frozen=True)
class ShareIndex:
    """A parsed key share, indexed by record id."""

    share: KeyShare
    entries: dict[bytes, ShareEntry]

    @classmethod
    def of(cls, share: KeyShare) -> ShareIndex:
        return cls(share, {entry.record_id: entry for entry in share.entries})

    def data_key(self, identity: Identity, info: RecordInfo, binding: RecordBinding) -> bytes:
        entry = self.entries.get(info.record_id)
        if (entry is None or to_checksum_address(self.share.grantee) != identity.address
                or entry.version != binding.version):
            raise KeyNotFound(f"the key share does not cover record {hex_id(info.record_id)} for {identity.address}")
        return open_sealed(identity, entry.wrapped, entry.key_version, binding)
