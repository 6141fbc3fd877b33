"""A writer packing batches in one process while another process keeps making the index rewrite itself
(it appends a damaged entry, as any process of the user can, then lists the store as gc does): the
rewrite (`.index-*` renamed over the index) must not lose an entry the writer appended meanwhile."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from tests.redteam7.conftest import ENTRY_SIZE, Cid, LocalStore, packs_dir

WRITER = """
import os, sys
from ehr_client.storage import LocalStore
store = LocalStore(sys.argv[1])
for _ in range(int(sys.argv[2])):
    with store.group_commit():
        for _ in range(25):
            print(store.put(os.urandom(700)), flush=True)
"""

REWRITER = """
import os, sys
from pathlib import Path
from ehr_client.storage import LocalStore
root, stop = Path(sys.argv[1]), Path(sys.argv[2])
rewrites = 0
while not stop.exists():
    with open(root / "packs" / "index", "ab") as index:
        index.write(os.urandom(64))  # an entry whose CRC fails: the next rebuild writes the index again
    rewrites += 1
    sum(1 for _ in LocalStore(root).blobs())
print(rewrites)
"""


def test_index_rewrites_beside_a_writer_lose_no_entry(tmp_path: Path) -> None:
    """Held: every blob the writer reported stored reads back and is listed once."""
    root = tmp_path / "store"
    seed = LocalStore(root)
    with seed.group_commit():
        seed.put(b"first blob, so the index exists")
    stop = tmp_path / "stop"
    rewriter = subprocess.Popen([sys.executable, "-c", REWRITER, str(root), str(stop)], stdout=subprocess.PIPE,
                                text=True)
    try:
        writer = subprocess.run([sys.executable, "-c", WRITER, str(root), "60"], capture_output=True, text=True,
                                timeout=300)
    finally:
        stop.write_text("")
        rewrites = int(rewriter.communicate(timeout=120)[0])
    assert writer.returncode == 0, writer.stderr
    assert rewrites > 1
    written = writer.stdout.split()
    assert len(written) == 60 * 25

    fresh = LocalStore(root)
    raw = (packs_dir(root) / "index").read_bytes()
    assert len(raw) % ENTRY_SIZE == 0
    for cid in written:  # before any listing could index again what a rewrite lost
        assert hashlib.sha256(fresh.get(Cid(cid))).digest()  # reads, checked against its CID
    listed = [cid for cid, _ in fresh.blobs()]
    assert len(listed) == len(set(listed))
    assert set(written) <= set(listed)
