"""Another process of the store's user puts something else in the index's place (`packs/index`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ehr_client.errors import StorageUnavailable
from ehr_client.storage.cid import cid_for_bytes
from tests.redteam7.conftest import LocalStore, packed_batch, packs_dir

READER = """
import sys
from ehr_client.errors import StorageUnavailable
from ehr_client.storage import LocalStore
try:
    LocalStore(sys.argv[1]).get(sys.argv[2])
except StorageUnavailable as exc:
    print("typed:", exc)
    sys.exit(3)
print("read")
"""


def test_a_fifo_in_the_index_place_hangs_every_reader(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    cid, _ = packed_batch(store, 5)[0]
    index = packs_dir(store.root) / "index"
    index.rename(index.with_name("index.aside"))
    os.mkfifo(index)

    try:
        reader = subprocess.run([sys.executable, "-c", READER, str(store.root), cid],
                                capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("a reader of a packed blob was still blocked on packs/index after 30 s")
    assert reader.returncode in (0, 3), reader.stderr


def test_a_directory_in_the_index_place_gives_typed_errors_and_loses_nothing(tmp_path: Path) -> None:
    """Held: reads, misses, listing, writes and removals refuse with StorageUnavailable; the index put
    back, every blob reads again."""
    store = LocalStore(tmp_path / "store")
    written = packed_batch(store, 5)
    index = packs_dir(store.root) / "index"
    index.rename(index.with_name("index.aside"))
    index.mkdir()

    other = LocalStore(store.root)
    with pytest.raises(StorageUnavailable):
        other.get(written[0][0])
    with pytest.raises(StorageUnavailable):
        other.has(cid_for_bytes(b"never stored"))
    with pytest.raises(StorageUnavailable):
        list(other.blobs())
    with pytest.raises(StorageUnavailable):
        with other.group_commit():
            other.put(b"new blob")
    with pytest.raises(StorageUnavailable):
        other.remove(written[1][0])

    index.rmdir()
    index.with_name("index.aside").rename(index)
    after = LocalStore(store.root)
    assert all(after.get(cid) == data for cid, data in written)
