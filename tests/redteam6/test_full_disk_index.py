"""The disk fills up between a blob's pack append and its index entry (the pack's last page had room, the
index needed a new one): what is left of the blob the writer was told was not stored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ehr_client.errors import StorageFull
from ehr_client.storage import LocalStore, cid_for_bytes
from tests.small_disk import SmallDisk, small_disk  # noqa: F401  (fixture)

ENTRIES_A_PAGE = 4096 // 64


def test_a_blob_refused_for_a_full_disk_leaves_no_bytes_in_the_store(small_disk: SmallDisk) -> None:
    store = LocalStore(small_disk.root / "store")
    refused = b"ciphertext the writer was told was not stored " + os.urandom(54)
    with pytest.raises(StorageFull), store.group_commit():
        for _ in range(ENTRIES_A_PAGE):  # the index ends exactly on a page; the pack's last page has room
            store.put(os.urandom(100))
        small_disk.fill()
        store.put(refused)
    small_disk.free()
    assert not store.has(cid_for_bytes(refused))

    store.remove(cid_for_bytes(refused))  # an erasure or gc, even knowing the CID

    leftovers = [p for p in store.root.rglob("*") if p.is_file() and refused in p.read_bytes()]
    assert leftovers == [], f"the refused blob's bytes are still in {leftovers}"
