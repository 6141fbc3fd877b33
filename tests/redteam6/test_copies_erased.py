"""A blob with several copies (a file, and packed in two batches; or removed, then stored again) is
removed: its bytes are nowhere under the store's root, and the blobs beside it are untouched (held)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ehr_client.errors import BlobNotFound
from ehr_client.storage import LocalStore


def _anywhere(root: Path, data: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def test_removing_a_blob_stored_as_a_file_and_in_two_packs_leaves_its_bytes_nowhere(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    secret, neighbour = os.urandom(3000), os.urandom(3000)
    with store.group_commit():
        cid = store.put(secret)
        kept = store.put(neighbour)
    with store.group_commit():
        store.put(secret)  # a second packed copy (a retried batch storing the same bytes)
    store.put(secret)  # and a file (stored outside a group commit)
    assert len(_anywhere(store.root, secret)) == 3

    LocalStore(store.root).remove(cid)  # another process: gc or an erasure

    assert _anywhere(store.root, secret) == []
    with pytest.raises(BlobNotFound):
        store.get(cid)
    assert store.get(kept) == neighbour


def test_a_blob_removed_then_stored_again_then_removed_leaves_its_bytes_nowhere(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    secret = os.urandom(2000)
    with store.group_commit():
        cid = store.put(secret)
    store.remove(cid)
    with store.group_commit():
        assert store.put(secret) == cid
    assert store.get(cid) == secret

    store.remove(cid)

    assert _anywhere(store.root, secret) == []
    assert not LocalStore(store.root).has(cid)
