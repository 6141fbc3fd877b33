"""Checking that bytes read back from a store are the bytes their CID names."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from ehr_client.errors import IntegrityError
from ehr_client.storage.cid import RAW, Cid, decode_cid


def integrity_error(cid: Cid, where: str, problem: str) -> IntegrityError:
    return IntegrityError(
        f"blob {cid} in {where} {problem}; the copy is corrupt or truncated and was not used: "
        "restore it from another replica"
    )


def check_bytes(cid: Cid, data: bytes, where: str) -> bytes:
    info = decode_cid(cid)
    if info.codec == RAW and hashlib.sha256(data).digest() != info.digest:
        raise integrity_error(cid, where, "does not hash to its CID")
    return data


def verified_chunks(
    cid: Cid, chunks: Iterable[bytes], where: str, *, expected_size: int | None = None
) -> Iterator[bytes]:
    """Yield `chunks`, holding the last one back until the whole blob has been checked.

    Raw CIDs are checked by hash; for other codecs only `expected_size`, if given, is checked.
    """
    info = decode_cid(cid)
    sha = hashlib.sha256() if info.codec == RAW else None
    total = 0
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        if sha is not None:
            sha.update(chunk)
        total += len(chunk)
        if pending:
            yield pending
        pending = bytes(chunk)
    if sha is not None and sha.digest() != info.digest:
        raise integrity_error(cid, where, "does not hash to its CID")
    if expected_size is not None and total != expected_size:
        raise integrity_error(cid, where, f"has {total} bytes where {expected_size} were expected")
    if pending:
        yield pending
