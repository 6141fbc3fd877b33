"""Entries another process of the store's user appends to the shared pack index (its CRC is no secret):
what readers, `ehr storage gc` and the record's reader do with them."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from ehr_client.records import canonicalize
from tests.batch.conftest import observation
from tests.redteam6.conftest import Cli, age_packs, forged_entry, index_entries, store_root

GIB = 1 << 30


def _import(cli: Cli, tmp_path: Path, first_value: int, count: int) -> list[str]:
    folder = tmp_path / "import"
    folder.mkdir()
    for i in range(count):
        (folder / f"obs-{i}.json").write_text(json.dumps(observation(first_value + i)))
    imported = cli.json("record", "import", str(folder), "--patient", "patient", wallet="lab")
    return [record["recordId"] for record in imported["records"]]


def _entry_of(home: Path, record_id: str) -> tuple[bytes, bytes, int, int]:
    """The index entry of the package bound to `record_id` (the binding is in the package's header)."""
    wanted = bytes.fromhex(record_id[2:])
    for digest, pack, offset, length in index_entries(home):
        path = store_root(home) / "packs" / f"{pack.hex()}.pack"
        if length == 0xFFFFFFFF or not path.exists() or offset >= path.stat().st_size:
            continue  # a tombstone, or an entry forged by an earlier attack
        with open(path, "rb") as f:
            f.seek(offset)
            if wanted in f.read(min(length, 128)):
                return digest, pack, offset, length
    raise AssertionError(f"no packed package is bound to {record_id}")


def _append_to_index(home: Path, *entries: bytes) -> None:
    with open(store_root(home) / "packs" / "index", "ab") as f:
        f.write(b"".join(entries))


def _read(cli: Cli, record_id: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ehr_client.cli", "--wallet", "patient", "record", "get", record_id,
                           "--out", str(out), "--force"],
                          env={**os.environ, **cli.env}, capture_output=True, text=True, timeout=300)


def test_a_forged_entry_pointing_a_record_at_another_records_bytes_never_yields_wrong_bytes(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    first, second = _import(cli, tmp_path, 6200, 2)
    digest, _, _, _ = _entry_of(home, first)
    _, other_pack, other_offset, other_length = _entry_of(home, second)
    _append_to_index(home, forged_entry(digest, other_pack, other_offset, other_length))

    out = tmp_path / "first.json"
    read = _read(cli, first, out)

    assert read.returncode == 0, read.stderr
    assert out.read_bytes() == canonicalize(observation(6200))


def test_gc_of_a_forged_garbage_entry_leaves_the_live_record_it_points_at_readable(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    (record,) = _import(cli, tmp_path, 6300, 1)
    _, pack, offset, length = _entry_of(home, record)
    garbage = hashlib.sha256(secrets.token_bytes(32)).digest()  # a CID nothing references: gc's to collect
    _append_to_index(home, forged_entry(garbage, pack, offset, length))
    age_packs(home, 3 * 24 * 3600)

    cli("storage", "gc", "--delete", "--grace", "1h", wallet="lab")

    out = tmp_path / "record.json"
    read = _read(cli, record, out)
    assert read.returncode == 0, read.stderr
    assert out.read_bytes() == canonicalize(observation(6300))


def test_a_forged_huge_entry_costs_a_reader_no_more_than_the_largest_packed_blob(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    (record,) = _import(cli, tmp_path, 6400, 1)
    digest, _, _, _ = _entry_of(home, record)
    sparse_name = secrets.token_bytes(16)
    with open(store_root(home) / "packs" / f"{sparse_name.hex()}.pack", "wb") as f:
        f.truncate(GIB)  # no disk blocks: reads as a gigabyte of zeros
    _append_to_index(home, forged_entry(digest, sparse_name, 0, GIB))

    out = tmp_path / "record.json"
    measured = subprocess.run(
        [sys.executable, "-c",
         "import resource, subprocess, sys; run = subprocess.run(sys.argv[1:]); "
         "print(run.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
         sys.executable, "-m", "ehr_client.cli", "--wallet", "patient", "record", "get", record, "--out", str(out),
         "--force"],
        env={**os.environ, **cli.env}, capture_output=True, text=True, timeout=300)
    returncode, peak_kib = (int(word) for word in measured.stdout.split()[-2:])

    assert returncode == 0, measured.stderr
    assert out.read_bytes() == canonicalize(observation(6400))
    assert peak_kib < 512 * 1024, f"the reader peaked at {peak_kib // 1024} MiB for a 1 KiB record"


def test_a_forged_entry_with_an_offset_past_the_os_limit_does_not_stop_the_record_being_read(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    (record,) = _import(cli, tmp_path, 6800, 1)
    digest, pack, _, length = _entry_of(home, record)
    _append_to_index(home, forged_entry(digest, pack, (1 << 64) - 1, length))

    out = tmp_path / "record.json"
    read = _read(cli, record, out)

    assert read.returncode == 0, read.stderr
    assert out.read_bytes() == canonicalize(observation(6800))


def test_a_forged_entry_does_not_keep_an_erased_records_package_on_disk(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    (record,) = _import(cli, tmp_path, 6900, 1)
    digest, pack, offset, length = _entry_of(home, record)
    pack_path = store_root(home) / "packs" / f"{pack.hex()}.pack"
    with open(pack_path, "rb") as f:
        f.seek(offset)
        package = f.read(length)
    _append_to_index(home, forged_entry(digest, pack, (1 << 64) - 1, length))

    cli("record", "erase", record, "--yes", "--custodian", "http://127.0.0.1:9", wallet="patient", expect=None)

    assert package not in pack_path.read_bytes(), "the erased record's package is still in its pack"
