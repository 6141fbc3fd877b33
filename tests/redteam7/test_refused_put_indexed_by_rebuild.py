"""A put refused at its index entry (a full disk) zeroes the bytes it appended, outside the index lock;
a listing (`ehr storage gc`, or a reader's miss) that rebuilds the index in between indexes the still
whole blob. The put failed, yet the store then says it has the blob, whose bytes are zeros: a resumed
import skips putting its batch manifest again when `has()` says it is there, and anchors it unreadable."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from ehr_client.storage.cid import cid_for_bytes
from tests.redteam7.conftest import LocalStore, packed_batch, packs_dir

BLOB = b"the batch manifest being sealed " * 30

WRITER = """
import resource, signal, sys
from ehr_client.errors import StorageFull
from ehr_client.storage import LocalStore
store = LocalStore(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the pack's append fits, the index's does not
try:
    with store.group_commit():
        store.put(bytes.fromhex(sys.argv[2]))
except StorageFull:
    print("refused")
"""


def test_a_put_refused_for_a_full_disk_is_not_stored(tmp_path: Path) -> None:
    root = tmp_path / "store"
    packed_batch(LocalStore(root), 100)  # an index of 6,400 bytes
    old_packs = set(packs_dir(root).glob("*.pack"))
    strace = shutil.which("strace")
    assert strace is not None
    writer = subprocess.Popen([strace, "-qq", "-f", "-o", "/dev/null", "-e", "trace=fallocate",
                               "-e", "inject=fallocate:delay_enter=3000000",  # the zeroing comes late
                               sys.executable, "-c", WRITER, str(root), BLOB.hex()],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not any(p.stat().st_size >= 48 + len(BLOB) for p in set(packs_dir(root).glob("*.pack")) - old_packs):
            assert writer.poll() is None, writer.communicate()
            time.sleep(0.01)
        sum(1 for _ in LocalStore(root).blobs())  # gc's listing, meanwhile
    finally:
        out, err = writer.communicate(timeout=120)
    assert out.strip() == "refused", err

    fresh = LocalStore(root)
    assert not fresh.has(cid_for_bytes(BLOB)), "a refused put is listed as stored, its bytes zeros"
