"""Erasure that says it is done while the blob's ciphertext stays in a pack: removal zeroes a copy only
where the pack's header names the digest, and appends its tombstone whatever it zeroed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ehr_client.errors import IntegrityError, StorageUnavailable
from tests.redteam7.conftest import (ENTRY_SIZE, LocalStore, packed_batch, packs_dir, put_killed_before_its_entry,
                                     stored_bytes_anywhere)
from tests.redteam6.conftest import ENTRY

HEADER_SIZE = 48


def entry_of(root: Path, data: bytes) -> tuple[Path, int]:
    """(pack, offset of the bytes) the index names for `data`."""
    raw = (packs_dir(root) / "index").read_bytes()
    digest = hashlib.sha256(data).digest()
    for at in range(0, len(raw) - len(raw) % ENTRY_SIZE, ENTRY_SIZE):
        found, name, offset, _ = ENTRY.unpack_from(raw, at)
        if found == digest:
            return packs_dir(root) / f"{name.hex()}.pack", offset
    raise AssertionError("no entry")


def test_a_damaged_header_keeps_the_erased_ciphertext_on_disk(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    written = packed_batch(store, 3)
    cid, data = written[1]
    pack, offset = entry_of(store.root, data)
    with open(pack, "r+b") as f:  # one bit of the header's CRC flips on the disk
        f.seek(offset - 1)
        last = f.read(1)
        f.seek(offset - 1)
        f.write(bytes([last[0] ^ 0x01]))
    assert store.get(cid) == data  # reads go by the index and check the bytes, not the header

    try:
        store.remove(cid)
        refused = False
    except StorageUnavailable:
        refused = True
    assert not store.has(cid)
    assert refused or not stored_bytes_anywhere(store.root, data), "erasure reported done, ciphertext still stored"


def test_a_removed_blob_comes_back_from_a_copy_a_crash_left_unindexed(tmp_path: Path) -> None:
    """The same bytes packed twice (a resumed import puts its batch manifest again when `has()` misses
    it), the second writer killed before its entry; the blob is then removed; the next `ehr storage gc`
    lists the store, which rebuilds the index."""
    store = LocalStore(tmp_path / "store")
    cid, data = packed_batch(store, 2)[0]
    killed = put_killed_before_its_entry(store.root, data)
    assert killed.returncode != 0
    assert len(list(packs_dir(store.root).glob("*.pack"))) == 2

    store.remove(cid)
    assert not store.has(cid)
    listed = {c for c, _ in store.blobs()}  # what gc lists
    assert cid not in listed
    assert not store.has(cid)
    assert not stored_bytes_anywhere(store.root, data)


def test_removal_interrupted_before_its_tombstone_resumes(tmp_path: Path) -> None:
    """Held: a removal killed between zeroing and its tombstone (zeroed, still indexed) reads as damaged,
    not as the blob, and a removal run again finishes it; nothing else of the pack is touched."""
    store = LocalStore(tmp_path / "store")
    written = packed_batch(store, 3)
    cid, data = written[1]
    pack, offset = entry_of(store.root, data)
    with open(pack, "r+b") as f:  # where a kill after _erase_bytes's fsync leaves the pack
        f.seek(offset)
        f.write(b"\0" * len(data))
    fresh = LocalStore(store.root)
    assert fresh.has(cid)
    with pytest.raises(IntegrityError):
        fresh.get(cid)
    fresh.remove(cid)
    assert not fresh.has(cid) and cid not in {c for c, _ in fresh.blobs()}
    assert all(fresh.get(c) == d for c, d in written if c != cid)
