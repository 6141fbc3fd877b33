"""A torn or garbage tail on the pack index (a writer killed mid-append, a bad copy, junk from another
program), then more writers: every blob stays readable to running and new readers alike (held)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ehr_client.storage import LocalStore
from tests.redteam6.conftest import packed_batch


@pytest.mark.parametrize("junk", [37, 100, 64 * 3], ids=["torn-entry", "more-than-an-entry", "whole-junk-entries"])
def test_every_blob_stays_readable_after_junk_on_the_index_tail(tmp_path: Path, junk: int) -> None:
    root = tmp_path / "store"
    running = LocalStore(root)
    written = packed_batch(LocalStore(root), 3)
    assert all(running.get(cid) == data for cid, data in written)  # the running reader has parsed them

    with open(root / "packs" / "index", "ab") as f:
        f.write(os.urandom(junk))
    assert all(running.get(cid) == data for cid, data in written)
    written += packed_batch(LocalStore(root), 3)  # a writer pads the torn tail before its entries
    written += packed_batch(LocalStore(root), 2)

    for reader in (running, LocalStore(root)):
        for cid, data in written:
            assert reader.get(cid) == data
    assert sorted(str(cid) for cid, _ in LocalStore(root).blobs()) == sorted(str(cid) for cid, _ in written)
