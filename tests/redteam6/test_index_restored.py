"""The pack index deleted, or restored from an older copy, while a long-running reader (a portal or a
custodian's store) keeps its parsed view of it: typed errors, never wrong bytes, and nothing present missed.
(The second test was a finding, fixed: see the commit that made the reader re-check its last entry.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ehr_client.errors import BlobNotFound, IntegrityError
from ehr_client.storage import Cid, LocalStore
from tests.redteam6.conftest import packed_batch


def test_a_reader_answers_typed_errors_while_the_index_is_deleted_or_replaced_by_an_older_copy(tmp_path: Path) -> None:
    writer, reader = LocalStore(tmp_path / "store"), LocalStore(tmp_path / "store")
    index = tmp_path / "store" / "packs" / "index"
    (old, old_data), = packed_batch(writer, 1)
    shutil.copyfile(index, tmp_path / "index.backup")
    (new, new_data), = packed_batch(writer, 1)
    writer.remove(old)  # erased after the backup was taken
    assert reader.get(new) == new_data

    index.unlink()  # the index is made again from the packs: the erased blob stays gone, the other is found
    with pytest.raises(BlobNotFound):
        reader.get(old)
    assert not reader.has(old)
    assert reader.get(new) == new_data and reader.has(new)

    os.replace(tmp_path / "index.backup", index)  # an older copy: without the erasure, without `new`
    with pytest.raises((BlobNotFound, IntegrityError)):
        reader.get(old)  # its bytes were punched out: never a wrong answer
    assert reader.get(new) == new_data  # its pack is named by no entry of the older copy: indexed again


def test_a_running_reader_finds_blobs_written_after_the_index_was_restored_in_place(tmp_path: Path) -> None:
    writer, reader = LocalStore(tmp_path / "store"), LocalStore(tmp_path / "store")
    index = tmp_path / "store" / "packs" / "index"
    packed_batch(writer, 1)
    shutil.copyfile(index, tmp_path / "index.backup")
    packed_batch(writer, 4)
    reader.has(Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"))  # the reader has parsed 5 entries

    shutil.copyfile(tmp_path / "index.backup", index)  # cp: the same file, cut back to 1 entry and rewritten
    written = packed_batch(LocalStore(tmp_path / "store"), 6)  # a writer appends 6: 7 entries, past the reader's 5

    for cid, data in written:
        assert reader.get(cid) == data
