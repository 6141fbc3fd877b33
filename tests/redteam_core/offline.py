"""What a grantee's own code does with bytes it kept: no chain check, no access request."""

from __future__ import annotations

from ehr_client.client import EHRClient
from ehr_client.client.keysource import ShareIndex, check_header
from ehr_client.client.model import RecordInfo
from ehr_client.crypto import iter_decrypt
from ehr_client.keyshare import KeyShare
from ehr_client.package import parse_header


def open_offline(reader: EHRClient, info: RecordInfo, blob: bytes, share: bytes) -> bytes:
    header, offset = parse_header(blob)
    binding = check_header(info, header)
    key = ShareIndex.of(KeyShare.from_bytes(share)).data_key(reader.identity, info, binding)
    return b"".join(iter_decrypt(memoryview(blob)[offset:], key, record_id=info.record_id, version=header.version,
                                 context=binding.context))
