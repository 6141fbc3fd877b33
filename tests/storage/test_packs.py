"""Packed blobs (a group commit's blobs appended to one pack) as faults and attackers meet them:
torn appends, a pack or index changed behind the store, removals seen by another process, two
writers at once, a process killed mid-batch. Every case ends in the right bytes or a typed error,
never another blob's bytes, and a removed blob's ciphertext is gone from the pack."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from ehr_client.errors import BlobNotFound, IntegrityError, StorageUnavailable
from ehr_client.storage._packs import INDEX_NAME, PACK_DIR, PACKED_AT_MOST, Packs
from ehr_client.storage.cid import Cid, cid_for_bytes, decode_cid
from ehr_client.storage.local import LocalStore

ENTRY = 64


def _grouped(store: LocalStore, blobs: list[bytes]) -> list[Cid]:
    with store.group_commit():
        return [store.put(blob) for blob in blobs]


def _index(store: LocalStore) -> Path:
    return store.root / PACK_DIR / INDEX_NAME


def _packs(store: LocalStore) -> list[Path]:
    return sorted((store.root / PACK_DIR).glob("*.pack"))


def _blobs(n: int, tag: str = "blob") -> list[bytes]:
    return [f"{tag} {i} ".encode() * (10 + i) for i in range(n)]


def test_a_group_commit_packs_its_blobs_into_one_file_and_every_one_reads_back(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    blobs = _blobs(50)
    cids = _grouped(store, blobs)
    assert len(_packs(store)) == 1 and _index(store).stat().st_size == 50 * ENTRY
    assert [p for p in store.root.iterdir() if p.name not in (PACK_DIR, ".incoming")] == []  # no file per blob
    fresh = LocalStore(store.root)  # another process
    assert [fresh.get(cid) for cid in cids] == blobs
    assert [b"".join(fresh.iter_get(cid)) for cid in cids] == blobs
    assert all(fresh.has(cid) and fresh.size(cid) == len(blob) for cid, blob in zip(cids, blobs))
    assert sorted(str(cid) for cid, _ in fresh.blobs()) == sorted(cids)
    _grouped(store, _blobs(3, "next"))
    assert len(_packs(store)) == 2  # a pack per group commit: the earlier one is never written again


def test_a_torn_index_append_is_padded_over_and_its_blob_found_again_in_the_pack(tmp_path: Path) -> None:
    """A crash mid-append leaves part of an entry: the next writer pads past it, and a reader that
    meets the damaged entry makes the index again from the packs, which hold the blob whole."""
    store = LocalStore(tmp_path / "store")
    cids = _grouped(store, _blobs(4))
    index = _index(store)
    index.write_bytes(index.read_bytes()[: 3 * ENTRY + 20])  # the fourth entry torn
    writer = LocalStore(store.root)
    later = _grouped(writer, [b"written after the crash"])
    assert index.stat().st_size == 5 * ENTRY  # padded to the entry size, then the new entry
    fresh = LocalStore(store.root)
    assert [fresh.get(cid) for cid in cids] == _blobs(4) and fresh.get(later[0]) == b"written after the crash"
    assert index.stat().st_size == 5 * ENTRY  # made again: the torn slot is gone, the fourth entry back
    assert sorted(str(c) for c, _ in LocalStore(store.root).blobs()) == sorted([*cids, *later])


def test_a_lost_or_damaged_index_is_made_again_from_the_packs_without_removed_blobs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    blobs = _blobs(6)
    cids = _grouped(store, blobs)
    store.remove(cids[2])
    _index(store).unlink()
    fresh = LocalStore(store.root)
    assert [fresh.get(cid) for cid in cids[:2] + cids[3:]] == blobs[:2] + blobs[3:]
    with pytest.raises(BlobNotFound):  # its bytes were zeroed: the rebuild does not bring it back
        fresh.get(cids[2])
    damaged = bytearray(_index(store).read_bytes())
    damaged[ENTRY + 40] ^= 1  # inside the second entry
    _index(store).write_bytes(bytes(damaged))
    assert LocalStore(store.root).get(cids[1]) == blobs[1]
    assert sorted(str(c) for c, _ in LocalStore(store.root).blobs()) == sorted(cids[:2] + cids[3:])


def test_a_torn_pack_append_without_its_entry_is_invisible(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    cids = _grouped(store, _blobs(2))
    with open(_packs(store)[0], "ab") as pack:  # a blob's bytes reached the pack, its entry never did
        pack.write(b"half of a blob")
    fresh = LocalStore(store.root)
    assert sorted(str(c) for c, _ in fresh.blobs()) == sorted(cids)
    assert [fresh.get(c) for c in cids] == _blobs(2)


def test_a_removed_packed_blob_is_gone_from_the_pack_and_for_every_process(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    blobs = _blobs(3)
    cids = _grouped(store, blobs)
    other = LocalStore(store.root)
    assert other.get(cids[1]) == blobs[1]  # another process has read (and indexed) it
    store.remove(cids[1])
    pack = _packs(store)[0].read_bytes()
    assert blobs[1] not in pack and blobs[0] in pack and blobs[2] in pack  # its ciphertext is gone
    for view in (store, other, LocalStore(store.root)):
        assert not view.has(cids[1])
        with pytest.raises(BlobNotFound):
            view.get(cids[1])
        assert view.get(cids[2]) == blobs[2]
        assert str(cids[1]) not in {str(c) for c, _ in view.blobs()}
    store.remove(cids[1])  # idempotent
    assert _grouped(store, [blobs[1]]) == [cids[1]] and other.get(cids[1]) == blobs[1]  # stored again: back


def test_an_index_entry_pointing_a_cid_at_other_bytes_never_returns_them(tmp_path: Path) -> None:
    """Someone with write access to the index names another blob's bytes for a CID: the read checks
    the bytes against the CID and uses the older, right copy, or fails typed if there is none."""
    store = LocalStore(tmp_path / "store")
    blobs = _blobs(2)
    cids = _grouped(store, blobs)
    entries = _index(store).read_bytes()
    victim_digest = decode_cid(cids[0]).digest
    other_entry = entries[ENTRY:2 * ENTRY]
    forged_body = victim_digest + other_entry[32:60]
    forged = forged_body + struct.pack(">I", zlib.crc32(forged_body))
    with open(_index(store), "ab") as index:
        index.write(forged)
    assert LocalStore(store.root).get(cids[0]) == blobs[0]  # the forged copy fails its hash: the older one
    _index(store).write_bytes(forged + entries[ENTRY:])  # the only entry of the victim is the forged one
    with pytest.raises(IntegrityError):
        LocalStore(store.root).get(cids[0])
    LocalStore(store.root).remove(cids[0])  # erasing the victim zeroes only bytes its pack header names
    assert LocalStore(store.root).get(cids[1]) == blobs[1]


def test_a_flipped_byte_in_a_pack_is_an_integrity_error_for_that_blob_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    blobs = _blobs(3)
    cids = _grouped(store, blobs)
    pack, offset, _ = store.location(cids[1])
    data = bytearray(pack.read_bytes())
    data[offset + 5] ^= 1  # inside the second blob
    pack.write_bytes(bytes(data))
    fresh = LocalStore(store.root)
    with pytest.raises(IntegrityError):
        fresh.get(cids[1])
    with pytest.raises(IntegrityError):
        b"".join(fresh.iter_get(cids[1]))
    assert fresh.get(cids[0]) == blobs[0] and fresh.get(cids[2]) == blobs[2]


def test_a_pack_deleted_behind_the_store_is_blob_not_found(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    first = _grouped(store, _blobs(2))
    second = _grouped(store, _blobs(2, "second"))
    _packs(store)[0].unlink() if store.location(first[0])[0] == _packs(store)[0] else _packs(store)[1].unlink()
    for view in (store, LocalStore(store.root)):
        with pytest.raises(BlobNotFound):
            view.get(first[0])
        assert view.get(second[1]) == _blobs(2, "second")[1]


def test_an_index_restored_from_a_backup_under_a_running_store_finds_the_newer_packs_again(tmp_path: Path) -> None:
    """An older index put back (a new file): what it does not name is found again in the packs."""
    store = LocalStore(tmp_path / "store")
    kept = _grouped(store, [b"in the backup"])
    backup = _index(store).read_bytes()
    newer = _grouped(store, [b"after the backup"])
    assert store.get(newer[0]) == b"after the backup"
    _index(store).unlink()
    _index(store).write_bytes(backup)  # a new file, shorter than what the store had read
    again = _grouped(LocalStore(store.root), [b"after the restore"])
    assert store.get(newer[0]) == b"after the backup"  # the pack no entry named: the index made again
    assert store.get(kept[0]) == b"in the backup" and LocalStore(store.root).get(again[0]) == b"after the restore"
    assert sorted(str(c) for c, _ in LocalStore(store.root).blobs()) == sorted(kept + newer + again)


def test_a_pack_with_nothing_whole_is_marked_once_not_scanned_at_every_miss(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    kept = _grouped(store, [b"whole"])
    (store.root / PACK_DIR / f"{'ab' * 16}.pack").write_bytes(b"EHRb torn before its header was whole")
    unknown = Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
    with pytest.raises(BlobNotFound):
        LocalStore(store.root).get(unknown)  # the miss makes the index again: the torn pack marked
    made = _index(store).stat().st_ino
    for _ in range(3):
        with pytest.raises(BlobNotFound):
            LocalStore(store.root).get(unknown)
    assert _index(store).stat().st_ino == made and LocalStore(store.root).get(kept[0]) == b"whole"  # not again


_WRITER = """
import sys
from ehr_client.storage.local import LocalStore
store = LocalStore(sys.argv[1])
tag = sys.argv[2]
for group in range(int(sys.argv[3])):
    with store.group_commit():
        for i in range(50):
            cid = store.put(f"{tag} {group} {i} ".encode() * 20)
            print(cid, flush=True)
"""


def test_two_writer_processes_share_one_index_without_losing_or_mixing_entries(tmp_path: Path) -> None:
    root = tmp_path / "store"
    LocalStore(root)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(root), tag, "8"], stdout=subprocess.PIPE,
                                text=True) for tag in ("a", "b")]
    written = [w.communicate(timeout=120)[0].split() for w in writers]
    assert all(w.returncode == 0 for w in writers)
    store = LocalStore(root)
    assert _index(store).stat().st_size == 2 * 8 * 50 * ENTRY
    for tag, cids in zip(("a", "b"), written):
        assert len(cids) == 400
        for n, cid in enumerate(cids):
            assert store.get(Cid(cid)) == f"{tag} {n // 50} {n % 50} ".encode() * 20


def test_a_writer_killed_mid_group_leaves_only_whole_blobs_or_typed_errors(tmp_path: Path) -> None:
    root = tmp_path / "store"
    LocalStore(root)
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), "k", "1000"], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    seen = [child.stdout.readline() for _ in range(120)]
    time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = LocalStore(root)
    listed = [cid for cid, _ in store.blobs()]
    assert {line.strip() for line in seen} <= {str(c) for c in listed}  # every acknowledged put is listed
    for cid in listed:
        data = store.get(cid)  # the page cache survives a kill: whole, and checked against the CID
        assert data.startswith(b"k ")
    after = _grouped(store, [b"after the kill"])
    assert LocalStore(root).get(after[0]) == b"after the kill"


def test_a_blob_over_the_pack_limit_keeps_a_file_of_its_own(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    large = os.urandom(PACKED_AT_MOST + 1)
    small, big = _grouped(store, [b"small", large])
    assert store.location(small)[0].parent.name == PACK_DIR
    assert store.location(big) == (store.path_for(big), 0, len(large))
    assert LocalStore(store.root).get(big) == large


def test_a_long_running_reader_sees_what_other_processes_pack_and_remove(tmp_path: Path) -> None:
    """Past its first lookups a store keeps a table of the index; it must follow the index still."""
    reader = LocalStore(tmp_path / "store")
    writer = LocalStore(tmp_path / "store")  # another process
    first = _grouped(writer, _blobs(40))
    assert [reader.get(cid) for cid in first] == _blobs(40)  # past the scans: the table is in use
    later = _grouped(writer, _blobs(5, "later"))
    writer.remove(first[3])
    assert [reader.get(cid) for cid in later] == _blobs(5, "later")
    with pytest.raises(BlobNotFound):
        reader.get(first[3])
    _index(writer).unlink()  # the index gone: made again from the packs, the removed blob still gone
    assert reader.get(first[0]) == _blobs(40)[0]
    with pytest.raises(BlobNotFound):
        reader.get(first[3])


def test_an_index_lost_before_the_next_batch_is_made_again_by_that_batch(tmp_path: Path) -> None:
    """The writer of the next batch finds packs and no index: the index it starts holds them all."""
    store = LocalStore(tmp_path / "store")
    before = _grouped(store, _blobs(3))
    _index(store).unlink()
    after = _grouped(LocalStore(store.root), _blobs(2, "after"))
    fresh = LocalStore(store.root)
    assert [fresh.get(cid) for cid in before + after] == _blobs(3) + _blobs(2, "after")
    assert sorted(str(c) for c, _ in fresh.blobs()) == sorted(before + after)


def test_an_index_rewritten_in_place_and_appended_past_is_read_again_whole(tmp_path: Path) -> None:
    """An older copy written over the index (same file), then more appended past what a running
    reader had read: the reader notices its last entry changed and reads the index again."""
    reader = LocalStore(tmp_path / "store")
    kept = _grouped(reader, [b"in the backup"])
    backup = _index(reader).read_bytes()
    _grouped(reader, _blobs(3, "lost"))
    assert reader.has(kept[0])
    with open(_index(reader), "r+b") as index:  # restored in place: same inode, older content
        index.write(backup)
        index.truncate()
    after = _grouped(LocalStore(reader.root), _blobs(6, "after"))  # past where the reader had read
    assert [reader.get(cid) for cid in after] == _blobs(6, "after")


def test_a_blob_whose_entry_a_crash_lost_is_listed_for_gc_and_a_missing_pack_stops_no_listing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between a blob's append to its pack and its index entry: the bytes are whole in the
    pack, and the listing gc works from must show them (else no gc or erasure ever reaches them)."""
    store = LocalStore(tmp_path / "store")
    first = _grouped(store, _blobs(2, "first"))
    second = _grouped(store, _blobs(2, "second"))

    def killed(self: Packs, entries: bytes, own_pack: Path | None = None, undo: object = None) -> None:
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(Packs, "_append_entries", killed)
    with pytest.raises(KeyboardInterrupt), store.group_commit():
        store.put(b"sealed package of a record the crash never journaled")
    monkeypatch.undo()
    orphan = cid_for_bytes(b"sealed package of a record the crash never journaled")
    fresh = LocalStore(store.root)
    assert str(orphan) in {str(c) for c, _ in fresh.blobs()}
    fresh.remove(orphan)  # what gc does with it
    assert not any(b"crash never journaled" in p.read_bytes() for p in _packs(store))

    store.location(first[0])[0].unlink()  # a pack lost: its blobs are gone, the others still listed
    assert sorted(str(c) for c, _ in LocalStore(store.root).blobs()) == sorted(second)


@pytest.mark.parametrize("offset", [1 << 63, (1 << 64) - 1, 1 << 48, 20])
def test_an_entry_with_an_impossible_offset_is_no_entry(tmp_path: Path, offset: int) -> None:
    store = LocalStore(tmp_path / "store")
    cids = _grouped(store, _blobs(2))
    (entry,) = [e for e in (_index(store).read_bytes()[i:i + ENTRY] for i in (0, ENTRY)) if e[:32] == decode_cid(
        cids[0]).digest]
    body = entry[:48] + struct.pack(">Q", offset) + entry[56:60]
    with open(_index(store), "ab") as index:
        index.write(body + struct.pack(">I", zlib.crc32(body)))
    fresh = LocalStore(store.root)
    assert fresh.get(cids[0]) == _blobs(2)[0]  # the forged entry is not an entry: the real one serves
    fresh.remove(cids[0])
    with pytest.raises(BlobNotFound):
        fresh.get(cids[0])
    assert fresh.get(cids[1]) == _blobs(2)[1]


def test_a_pack_swapped_for_a_symlink_or_a_fifo_is_never_followed_or_waited_on(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    first = _grouped(store, _blobs(2, "first"))
    second = _grouped(store, _blobs(2, "second"))
    victim = tmp_path / "someone else's file"
    pack = store.location(first[0])[0]
    victim.write_bytes(pack.read_bytes())  # even a copy of the pack itself, headers and all
    pack.unlink()
    pack.symlink_to(victim)
    fresh = LocalStore(store.root)
    with pytest.raises(StorageUnavailable):
        fresh.get(first[0])
    with pytest.raises(StorageUnavailable):
        fresh.remove(first[0])
    assert victim.read_bytes() == (tmp_path / "someone else's file").read_bytes() and _blobs(2, "first")[0] in (
        victim.read_bytes())  # nothing zeroed through the link
    assert sorted(str(c) for c, _ in fresh.blobs()) == sorted(second)
    other = store.location(second[0])[0]
    other.unlink()
    os.mkfifo(other)
    with pytest.raises(StorageUnavailable):
        LocalStore(store.root).get(second[0])  # answered, not blocked on the FIFO


def test_a_blob_kept_as_a_file_and_packed_is_listed_once_and_removed_everywhere(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    (packed,) = _grouped(store, [b"twice"])
    assert store.put(b"twice") == packed  # outside a group: a file
    assert [str(c) for c, _ in store.blobs()] == [str(packed)]
    store.remove(packed)
    assert not store.has(packed) and list(store.blobs()) == []
    assert not any(b"twice" in p.read_bytes() for p in store.root.rglob("*") if p.is_file())


def test_a_blob_torn_by_a_killed_writer_is_cut_from_its_pack_but_not_while_a_writer_holds_it(
        tmp_path: Path) -> None:
    """A writer killed in the middle of a blob's own write leaves part of a sealed package at the
    pack's end: the next listing cuts it off, unless a live writer holds the pack (its lock)."""
    store = LocalStore(tmp_path / "store")
    cids = _grouped(store, _blobs(2))
    pack = store.location(cids[0])[0]
    whole = pack.read_bytes()
    torn = b"EHRP part of a sealed package, its keys wrapped to the lab"
    header = struct.pack(">4s32sQ", b"EHRb", b"\1" * 32, 4096)
    with open(pack, "ab") as f:
        f.write(header + struct.pack(">I", zlib.crc32(header)) + torn)
    held = os.open(pack, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # as the writer holds its pack while it writes
    try:
        list(LocalStore(store.root).blobs())
        assert pack.read_bytes().endswith(torn)
    finally:
        os.close(held)
    assert sorted(str(c) for c, _ in LocalStore(store.root).blobs()) == sorted(cids)
    assert pack.read_bytes() == whole and LocalStore(store.root).get(cids[1]) == _blobs(2)[1]


def test_a_damaged_header_before_indexed_blobs_is_not_cut_as_a_torn_tail(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    cids = _grouped(store, _blobs(3))
    pack, offset, _ = store.location(cids[1])
    data = bytearray(pack.read_bytes())
    data[offset - 10] ^= 1  # the second blob's header no longer checks: the scan stops there
    pack.write_bytes(bytes(data))
    list(LocalStore(store.root).blobs())
    assert pack.read_bytes() == bytes(data)  # the third blob is indexed after it: nothing cut
    assert LocalStore(store.root).get(cids[2]) == _blobs(3)[2]
