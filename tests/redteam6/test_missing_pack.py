"""One pack deleted (by damage, or by an operator tidying packs whose every blob gc already punched out):
what `ehr storage gc` still sees of the others."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.batch.conftest import observation
from tests.redteam6.conftest import Cli, age_packs, pack_files, store_root
from ehr_client.storage import LocalStore


def test_gc_still_collects_an_orphan_after_an_earlier_pack_went_missing(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "import"
    folder.mkdir()
    (folder / "obs.json").write_text(json.dumps(observation(6700)))
    before = set(pack_files(home))
    cli("record", "import", str(folder), "--patient", "patient", wallet="lab")
    (earlier,) = [p for p in pack_files(home) if p not in before]
    store = LocalStore(store_root(home))
    with store.group_commit():  # what a writer killed after storing and before journaling leaves behind
        orphan = store.put(os.urandom(900))
    age_packs(home, 3 * 24 * 3600)
    assert orphan in cli.json("storage", "gc", "--grace", "1h", wallet="lab")["garbage"]

    earlier.unlink()
    cli("storage", "gc", "--delete", "--grace", "1h", wallet="lab")

    assert not LocalStore(store_root(home)).has(orphan)
