"""Every journal file a real session writes, damaged every way a disk or a person can damage it.

After real writes (single and batched, acknowledged and interrupted, key shares), the state
directories are walked: each file found is damaged (a line cut short, the file cut mid-line, a
byte flipped, the file deleted, a torn last line) and the user's next steps run (the same writes
again, `recover` by the author and the patient, `gc --delete`). Each damage must end in a typed `JournalDamaged` that names a
command to run, or in a clean ledger; never a record written twice, an acknowledged record or key
share lost. A file the walk finds that this test does not know fails it, so new files get covered.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.batch.gc import collect
from ehr_client.batch.recover import recover
from ehr_client.client import EHRClient
from ehr_client.errors import ChainUnavailable
from ehr_client.journal import JournalDamaged
from ehr_client.records import Scope, canonicalize
from ehr_client.storage import Cid, LocalStore
from tests.batch.conftest import observation
from tests.client.conftest import lab_result
from tests.constants import DAY

# Every file the client keeps in a state directory: an appended log, a whole entry (written by an
# atomic rename, so never torn: a pending write, a counted log's `.length`), or None for `lock`, an
# empty flock target that is never read.
KNOWN = {"pending/*.json": "entry", "acknowledged.log": "log", "shares.log": "log", "batch/journal.jsonl": "log",
         "batch/anchored.log": "log", "batch/batches.log": "log", "batch/lock": None, "decisions.log": "log",
         "acknowledged.log.length": "entry", "decisions.log.length": "entry", "shares.log.length": "entry"}
DAMAGES = ["line cut short", "file cut mid-line", "byte flipped", "deleted", "torn last line"]
MUST_FAIL = {"line cut short", "byte flipped"}  # damage inside the file: always reported
NEVER_FAIL = {"torn last line"}  # what a crash mid-append leaves a log: always works
COMMAND = re.compile(r"\bmv |\bsed |`ehr ")


def _single(n: int) -> dict[str, Any]:
    return lab_result(f"single {n}", 5 + n / 10)


class _World:
    """The writes of a session, some acknowledged, some interrupted, and their ledger."""

    def __init__(self, people: dict[str, EHRClient], lab: EHRClient, grantees: list[str]) -> None:
        self.patient, self.lab, self.grantees = people["patient"], lab, grantees
        self.batched = [BatchItem(self.patient.address, observation(i)) for i in range(6)]

    def _stalled(self, write: Any) -> None:
        w3 = self.lab.chain.w3
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        self.lab.chain.timeout = 1
        try:
            with pytest.raises(ChainUnavailable):
                write()
            w3.provider.make_request("anvil_dropAllTransactions", [])  # type: ignore[arg-type]
        finally:
            w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
            self.lab.chain.timeout = 30

    def write(self) -> None:
        self.lab.add_record(self.patient.address, _single(0))
        self.lab.add_record(self.patient.address, _single(1))
        BatchWriter(self.lab, batch_size=2).write(self.batched[:4])
        for grantee in self.grantees:  # each stores a key share
            self.patient.grant(grantee, int(Scope.LAB), expires_at=self.patient.chain.now() + DAY)
        self._stalled(lambda: self.lab.add_record(self.patient.address, _single(2)))
        self._stalled(lambda: BatchWriter(self.lab, batch_size=2).write(self.batched))

    def next_steps(self) -> None:
        """What the user does next: the same writes again, then recovery and garbage collection."""
        for n in range(3):
            self.lab.add_record(self.patient.address, _single(n))
        BatchWriter(self.lab, batch_size=2).write(self.batched)
        recover(self.lab)
        recover(self.patient)  # the patient's grants (decisions.log)

    def contents(self) -> Counter[bytes]:
        """How many records on chain hold each content (all the lab's records are readable)."""
        return Counter(self.patient.read_record(r.record_id).data for r in self.patient.list_records(self.patient.address))

    def expected(self) -> Counter[bytes]:
        return Counter([canonicalize(_single(n)) for n in range(3)]
                       + [canonicalize(observation(i)) for i in range(6)])


def _files(state_dirs: list[Path]) -> list[Path]:
    return sorted(p for d in state_dirs for p in d.rglob("*") if p.is_file())


def _kind(path: Path, state_dirs: list[Path]) -> str:
    for d in state_dirs:
        if path.is_relative_to(d):
            relative = path.relative_to(d)
            return next((k for k in KNOWN if relative.match(k)), str(relative))
    raise AssertionError(path)


def _damage(path: Path, damage: str) -> None:
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    middle = (len(lines) - 1) // 2  # a line before the last when there are several
    start = sum(len(line) for line in lines[:middle])
    if damage == "line cut short":
        line = lines[middle]
        lines[middle] = line[: len(line) // 2] + (b"\n" if line.endswith(b"\n") else b"")
        path.write_bytes(b"".join(lines))
    elif damage == "file cut mid-line":
        path.write_bytes(data[: start + len(lines[middle]) // 2])
    elif damage == "byte flipped":
        at = start + len(lines[middle]) // 3
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])
    elif damage == "deleted":
        path.unlink()
    elif damage == "torn last line":
        path.write_bytes(data + lines[-1][: len(lines[-1]) // 2])


@pytest.mark.parametrize("damage", DAMAGES)
def test_every_journal_file_damaged_is_reported_or_harmless_never_a_duplicate(
    damage: str, people: dict[str, EHRClient], writer_lab: EHRClient, store: LocalStore, suite: Any,
    client_for: Callable[..., EHRClient], tmp_path: Path,
) -> None:
    grantees = [people["doctor"].address, people["insurer"].address]
    _World(people, writer_lab, grantees).write()
    state_dirs = [writer_lab.state_dir, people["patient"].state_dir]
    found = _files(state_dirs)
    kinds = {_kind(p, state_dirs) for p in found}
    assert kinds == set(KNOWN), f"files nobody checks: {kinds - set(KNOWN)}; missing: {set(KNOWN) - kinds}"
    shares = [Cid(cid) for d in state_dirs for cid in _shares(d)]
    assert len(shares) == 2

    w3 = suite.w3
    backup = tmp_path / "backup"
    for path in found:
        kind = KNOWN[_kind(path, state_dirs)]
        if kind is None:
            continue
        snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
        shutil.copytree(tmp_path, backup, ignore=shutil.ignore_patterns("backup"))
        _damage(path, damage)
        # fresh clients, as a new process would be: nothing cached from an earlier round
        world = _World({"patient": client_for("patient")}, client_for("lab"), grantees)
        outcome = "clean"
        try:
            world.next_steps()
            collect(suite, store, state_dirs, grace=0, delete=True)
        except JournalDamaged as exc:
            outcome = "reported"
            assert COMMAND.search(str(exc)), f"{path.name}: no command to run in: {exc}"
        label = f"{_kind(path, state_dirs)} {damage}: {outcome}"
        contents = world.contents()
        assert max(contents.values()) == 1, f"{label}: a record written twice"
        assert all(store.has(cid) for cid in _live(world)), f"{label}: gc deleted a live blob"
        assert all(store.has(cid) for cid in shares), f"{label}: a key share was lost"
        print(label)
        if damage in MUST_FAIL or (kind == "entry" and damage != "deleted"):
            assert outcome == "reported", label
        if damage in NEVER_FAIL and kind == "log":
            assert outcome == "clean", label
        if outcome == "clean":
            assert contents == world.expected(), label
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
        for d in state_dirs + [store.root]:
            shutil.rmtree(d)
            shutil.copytree(backup / d.relative_to(tmp_path), d)
        shutil.rmtree(backup)


def _shares(state_dir: Path) -> list[str]:
    log = state_dir / "shares.log"
    return [line.split("\t")[0] for line in log.read_text().splitlines()] if log.exists() else []


def _live(world: _World) -> list[Cid]:
    found = []
    for info in world.patient.list_records(world.patient.address):
        found.append(info.cid)
        if info.batch is not None:
            found.append(info.batch.manifest_cid)
    return found


def test_a_lost_state_directory_never_writes_a_batch_twice(
    people: dict[str, EHRClient], writer_lab: EHRClient, store: LocalStore,
) -> None:
    """The whole state directory gone (a new laptop, a wiped home): single writes land as the same
    records; a batch import is refused, naming the way out, rather than written a second time."""
    patient = people["patient"]
    world = _World(people, writer_lab, [people["doctor"].address, people["insurer"].address])
    world.write()
    shutil.rmtree(writer_lab.state_dir)

    with pytest.raises(JournalDamaged, match=r"anchored 2 batches .*\(touch .*anchored\.log"):
        world.next_steps()

    contents = world.contents()
    assert max(contents.values()) == 1
    assert contents == Counter([canonicalize(_single(n)) for n in range(3)]
                               + [canonicalize(observation(i)) for i in range(4)])
    assert all(store.has(cid) for cid in _live(world))
    assert patient.list_records(patient.address)  # and everything on chain still reads
