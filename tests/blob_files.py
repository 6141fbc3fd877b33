"""A LocalStore's blobs as a fault or an attacker sees them: files, or parts of a pack."""

from __future__ import annotations

import os
from pathlib import Path

from ehr_client.storage import Cid, LocalStore


def blob_cids(store: LocalStore) -> list[str]:
    """Every blob the store lists (files and packed), as sorted CID strings."""
    return sorted(str(cid) for cid, _ in store.blobs())


def store_files(store: LocalStore) -> list[Path]:
    """Every file under the store's root that is not a temporary one: blobs, packs and the pack index."""
    return sorted(p for p in store.root.rglob("*") if p.is_file() and not p.name.startswith("."))


def overwrite_blob(store: LocalStore, cid: Cid | str, data: bytes) -> None:
    """Put `data` where the blob's bytes are read from: the whole file, or its range of a pack
    (cut or padded with zeros to the range's length)."""
    path, offset, length = store.location(Cid(str(cid)))
    path.chmod(0o600)
    if offset == 0 and length == path.stat().st_size and not path.parent.name == "packs":
        path.write_bytes(data)
        return
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data[:length].ljust(length, b"\0"))


def age_blob(store: LocalStore, cid: Cid | str, seconds: float) -> None:
    """Make the blob's file (or its pack) look `seconds` older."""
    path, _, _ = store.location(Cid(str(cid)))
    stat = path.stat()
    os.utime(path, (stat.st_atime - seconds, stat.st_mtime - seconds))
