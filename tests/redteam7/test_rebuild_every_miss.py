"""Another process of the store's user puts something that is not a pack file under a pack's name in
`packs/` (a directory, a FIFO): the rebuild skips it without a mark, so no entry ever names it, and every
later lookup that misses (`has()` of a blob not here: gc asks it for every anchored batch's manifest,
the portal for every record it lists) makes the index again, reading and hashing every pack."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ehr_client.storage.cid import cid_for_bytes
from tests.redteam7.conftest import LocalStore, packed_batch, packs_dir, rebuild_ran

NOT_A_PACK = "ab" * 16 + ".pack"


def plant_directory(path: Path) -> None:
    path.mkdir()


def plant_fifo(path: Path) -> None:
    os.mkfifo(path)


@pytest.mark.parametrize("plant", [plant_directory, plant_fifo], ids=["directory", "fifo"])
def test_a_non_pack_under_a_pack_name_makes_every_miss_rebuild(tmp_path: Path, plant: Callable[[Path], None]) -> None:
    store = LocalStore(tmp_path / "store")
    written = packed_batch(store, 20)
    plant(packs_dir(store.root) / NOT_A_PACK)

    assert not store.has(cid_for_bytes(b"never stored 0"))  # the first miss may make the index again, once
    for attempt in range(1, 4):
        rebuild_ran(store.root, plant=True)
        assert not store.has(cid_for_bytes(b"never stored %d" % attempt))
        assert not rebuild_ran(store.root), f"miss {attempt} made the whole index again"
    assert all(store.get(cid) == data for cid, data in written)


def test_a_pack_with_nothing_whole_is_marked_once(tmp_path: Path) -> None:
    """Held: an empty pack (a writer killed right after creating it) is scanned once, then marked."""
    store = LocalStore(tmp_path / "store")
    written = packed_batch(store, 20)
    (packs_dir(store.root) / ("cd" * 16 + ".pack")).write_bytes(b"")

    assert not store.has(cid_for_bytes(b"never stored 0"))
    for attempt in range(1, 4):
        rebuild_ran(store.root, plant=True)
        assert not store.has(cid_for_bytes(b"never stored %d" % attempt))
        assert not rebuild_ran(store.root)
    assert all(store.get(cid) == data for cid, data in written)
