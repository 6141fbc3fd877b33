"""A local journal of writes: stored but not yet anchored, and acknowledged.

Store first, anchor second: when anchoring fails, the pending entry stays, and the next attempt to
write the same content for the same patient reuses the stored blob and record id instead of
storing a duplicate. Entries are keyed by an HMAC of the content under a key of the writer's, so
the journal never holds health data or an unkeyed hash of it.

Once the anchor is mined (to the configured depth) the write is appended, fsynced, to
`<state_dir>/acknowledged.log` before the pending entry goes: what was acknowledged can be
re-anchored, under the same id and with the same blob, if a chain loses it (`EHRClient.recover`).

Every journal file is checked: a pending entry, and each line of a log, is ``payload<TAB>sha256
of the payload, 16 hex``. A crash mid-append leaves a torn last line (no newline), which is
ignored (it was never acknowledged) and cut off before the next append; any other damage (a bad
checksum, a truncated pending entry) raises `JournalDamaged` naming the file, the line and the
command that gets past it, never skipped in silence. A full disk raises `StorageFull`.

A torn last line and a log cut short look alike from inside the file, so the logs recovery and
erasure depend on (`acknowledged.log`, `decisions.log`, share logs) are "counted": each append also records the log's
length, fsynced and atomically replaced, in `<log>.length`. Crashes only ever leave the log longer
than its record (a torn line, or a line appended but not yet counted); a log shorter than its record,
or gone while its record stays, was cut or replaced and raises `JournalDamaged`, on reading it
and before appending to it (an append would make the cut look normal).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ehr_client._files import replace_atomically
from ehr_client.errors import ConfigError, StorageFull, StorageUnavailable

log = logging.getLogger("ehr_client")
T = TypeVar("T")

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class JournalDamaged(ConfigError):
    """A journal file is damaged; the message names it and the way out."""


@dataclass(frozen=True)
class PendingWrite:
    record_id: str
    patient: str
    cid: str
    content_hash: str
    scope: int
    previous_id: str | None
    salt: str | None = None


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(payload).hexdigest()[:16].encode()


def checked_line(payload: bytes) -> bytes:
    """One journal line: the payload, a tab, its checksum, a newline."""
    return payload + b"\t" + _checksum(payload) + b"\n"


def checked_payload(line: bytes) -> bytes:
    """The payload of a checked line; ValueError if its checksum does not match."""
    payload, tab, checksum = line.rstrip(b"\n").rpartition(b"\t")
    if not tab or _checksum(payload) != checksum:
        raise ValueError("checksum mismatch")
    return payload


def read_checked(path: Path, *, then: str, counted: bool = False) -> list[bytes]:
    """The payloads of a checked log, oldest first, a torn last line ignored; [] if it does not exist.
    `then` says what to run after cutting a damaged line out. A `counted` log (see `append_counted`)
    shorter than its recorded length raises `JournalDamaged`."""
    expected = recorded_length(path) if counted else None
    if expected is not None:
        then = f"move its length record aside (mv {length_path(path)} {length_path(path)}.damaged), then {then}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if expected:
            raise _cut_short(path, 0, expected, then=then) from None
        return []
    except OSError as exc:
        raise StorageUnavailable(f"cannot read the journal {path} ({exc.strerror or exc}); check its permissions") from None
    if expected is not None and data.rfind(b"\n") + 1 < expected:
        raise _cut_short(path, data.rfind(b"\n") + 1, expected, then=then)
    complete, _, _torn = data.rpartition(b"\n")
    payloads = []
    for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
        try:
            payloads.append(checked_payload(line))
        except ValueError as exc:
            raise damaged_line(path, number, str(exc), then=then) from None
    return payloads


def read_entries(path: Path, build: Callable[[dict[str, Any]], T], *, then: str, counted: bool = False) -> list[T]:
    """`read_checked` of a log of JSON objects, each made into an entry by `build`; a line that is
    not one raises `JournalDamaged` like a bad checksum."""
    entries = []
    for number, payload in enumerate(read_checked(path, then=then, counted=counted), start=1):
        try:
            entries.append(build(json.loads(payload)))
        except (ValueError, TypeError) as exc:
            raise damaged_line(path, number, str(exc), then=then) from None
    return entries


def damaged_line(path: Path, number: int, why: str, *, then: str) -> JournalDamaged:
    return JournalDamaged(
        f"{path} is damaged at line {number} ({why}); nothing was replayed. Keep a copy and drop that line "
        f"(sed -i.damaged '{number}d' {path}), then {then}"
    )


def _cut_short(path: Path, have: int, expected: int, *, then: str) -> JournalDamaged:
    missing = "is missing" if have == 0 else f"holds {have} complete bytes"
    return JournalDamaged(
        f"{path} {missing} but its appends left it {expected} bytes long: it was cut short, deleted or replaced "
        "by an older copy, and the lines it lost are not a crash's torn append; nothing was replayed. Restore it "
        f"from a backup if you have one; to go on with what is left, {then}"
    )


def length_path(path: Path) -> Path:
    """Where a counted log's length is recorded."""
    return path.with_name(path.name + ".length")


def recorded_length(path: Path) -> int | None:
    """The length a counted log had after its last counted append; None if nothing was recorded."""
    sidecar = length_path(path)
    try:
        return int(checked_payload(sidecar.read_bytes()))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        raise JournalDamaged(
            f"the length record {sidecar} of {path} is damaged; move it aside (mv {sidecar} {sidecar}.damaged): the "
            "next append records the length again (a log cut short before then is not detected)"
        ) from None
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {sidecar} ({exc.strerror or exc}); check its permissions") from None


def append_counted(path: Path, line: bytes, *, then: str) -> None:
    """`append_line`, then record the log's new length (see the module docstring). A log already
    cut short is `JournalDamaged` first (appending would make its cut the new normal); `then` says
    what to do once it is dealt with. The line is durable once appended: a failure to record the
    length only weakens the check, so it is logged."""
    expected = recorded_length(path)
    if expected:
        try:
            have = path.stat().st_size
        except FileNotFoundError:
            have = 0
        if have < expected:
            sidecar = length_path(path)
            raise _cut_short(path, have, expected, then=f"move its length record aside (mv {sidecar} "
                             f"{sidecar}.damaged), then {then}")
    size = append_line(path, line)
    sidecar = length_path(path)
    try:
        # No directory fsync: a crash that undoes the rename leaves the older, smaller length, which
        # the log still satisfies; the check only needs the record never to exceed the log.
        replace_atomically(sidecar, checked_line(str(size).encode()))
    except OSError as exc:
        log.warning("could not record the length of %s (%s); a cut-short log is detected after the next append",
                    path, exc.strerror or exc)


@dataclass(frozen=True)
class Reissue:
    """Erasure replaced the key share `old` by `new` (None: nothing was left to share), dropping the
    entries of the records `dropped` (hex ids)."""

    old: str
    new: str | None
    grantee: str
    dropped: tuple[str, ...]


class ShareLog:
    """The CIDs of the key shares one writer stored, one checked line each (counted), and beside it
    (`<name>.reissued.log`) how erasure replaced them. A share's CID travels off chain, so this log
    is what keeps it from gc and what erasure re-issues shares from; the re-issues are logged before
    the old share goes, so whoever asks again (a retry after a crash) is told every new CID."""

    def __init__(self, path: Path, *, then: str) -> None:
        self.path = path
        self.reissues_path = path.with_suffix(".reissued.log")
        self._then = then

    def add(self, cid: str) -> None:
        self._append(self.path, cid.encode())

    def cids(self) -> list[str]:
        """Every CID logged, oldest first, each once."""
        return list(dict.fromkeys(line.decode() for line in read_checked(self.path, then=self._then, counted=True)))

    def reissued(self, reissue: Reissue) -> None:
        self._append(self.reissues_path, json.dumps(asdict(reissue), separators=(",", ":"), sort_keys=True).encode())

    def reissues(self) -> list[Reissue]:
        return read_entries(self.reissues_path, lambda d: Reissue(str(d["old"]), None if d["new"] is None else
                                                                  str(d["new"]), str(d["grantee"]),
                                                                  tuple(str(x) for x in d["dropped"])),
                            then=self._then, counted=True)

    def _append(self, path: Path, payload: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            append_counted(path, checked_line(payload), then=self._then)
        except OSError as exc:
            raise unwritable(path.parent, exc) from None


class Journal:
    """Pending writes in `<state_dir>/pending/<fingerprint>.json`, written atomically."""

    def __init__(self, state_dir: Path, secret: bytes) -> None:
        self._dir = Path(state_dir) / "pending"
        self._secret = secret

    def fingerprint(self, *parts: bytes) -> str:
        mac = hmac.new(self._secret, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(len(part).to_bytes(8, "big") + part)
        return mac.hexdigest()

    def get(self, fingerprint: str) -> PendingWrite | None:
        path = self._dir / f"{fingerprint}.json"
        try:
            return PendingWrite(**json.loads(checked_payload(path.read_bytes())))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, UnicodeDecodeError):
            raise JournalDamaged(
                f"the pending write {path} is damaged; move it aside (mv {path} {path}.damaged) and write the "
                "record again: the same write lands as the same record, and `ehr storage gc` removes the old blob"
            ) from None

    def put(self, fingerprint: str, entry: PendingWrite) -> None:
        try:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".pending.")
        except OSError as exc:
            raise unwritable(self._dir, exc) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(checked_line(json.dumps(asdict(entry), separators=(",", ":"), sort_keys=True).encode()))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._dir / f"{fingerprint}.json")
            _fsync_dir(self._dir)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise unwritable(self._dir, exc) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def shares_path(self) -> Path:
        return self._dir.parent / "shares.log"

    @property
    def share_log(self) -> ShareLog:
        return ShareLog(self.shares_path,
                        then="share the record again (`ehr share GRANTEE`) before `ehr storage gc --delete`")

    def shared(self, cid: str) -> None:
        """Note a key share this writer stored (see `ShareLog`)."""
        self.share_log.add(cid)

    def shares(self) -> list[str]:
        return self.share_log.cids()

    @property
    def acknowledged_path(self) -> Path:
        return self._dir.parent / "acknowledged.log"

    def acknowledge(self, entry: PendingWrite) -> None:
        """Append an anchored write to the acknowledged log (fsynced), before its pending entry goes.
        A write acknowledged just before a crash (it is then among the last lines) is not logged twice."""
        payload = json.dumps(asdict(entry), separators=(",", ":"), sort_keys=True).encode()
        if self._recently_acknowledged(entry.record_id):
            return
        try:
            self._dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            append_counted(self.acknowledged_path, checked_line(payload),
                           then="run `ehr record recover`, then write again (the same write lands as the same record)")
        except OSError as exc:
            raise unwritable(self._dir.parent, exc) from None

    def _recently_acknowledged(self, record_id: str) -> bool:
        try:
            with open(self.acknowledged_path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - 65536))
                return f'"record_id":"{record_id}"'.encode() in log.read()
        except FileNotFoundError:
            return False

    def acknowledged(self) -> list[PendingWrite]:
        """Every acknowledged write, oldest first; a damaged line raises `JournalDamaged`."""
        then = "run `ehr record recover` (the write of that line, if a chain lost it, must be written again)"
        return read_entries(self.acknowledged_path, lambda fields: PendingWrite(**fields), then=then, counted=True)

    @property
    def claims_path(self) -> Path:
        return self._dir.parent / "claims.log"

    def claimed(self, record_id: bytes, salt: bytes | None) -> None:
        """Note (fsynced) that this author's claim commitment for a record is on chain, so `ehr record
        recover` can commit it again if a chain loses it; `salt` for a single record, None if batched."""
        payload = json.dumps({"recordId": "0x" + record_id.hex(), "salt": None if salt is None else "0x" + salt.hex()},
                             separators=(",", ":"), sort_keys=True).encode()
        try:
            self._dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            append_line(self.claims_path, checked_line(payload))
        except OSError as exc:
            raise unwritable(self._dir.parent, exc) from None

    def claimed_records(self) -> dict[bytes, bytes | None]:
        """Every record whose claim this author committed: its id and salt (None if batched), oldest first."""
        then = "commit the claims of that line's record again (`Claims.restore`), then move the log aside"
        found: dict[bytes, bytes | None] = {}
        for number, payload in enumerate(read_checked(self.claims_path, then=then), start=1):
            try:
                entry = json.loads(payload)
                found[bytes.fromhex(entry["recordId"][2:])] = None if entry["salt"] is None else bytes.fromhex(
                    entry["salt"][2:])
            except (ValueError, TypeError, KeyError) as exc:
                raise damaged_line(self.claims_path, number, str(exc), then=then) from None
        return found

    def done(self, fingerprint: str) -> None:
        (self._dir / f"{fingerprint}.json").unlink(missing_ok=True)

    def forget(self, record_ids: set[str]) -> int:
        """Drop the entries of these records (hex ids), e.g. after erasure; returns how many."""
        removed = 0
        if self._dir.exists():
            for path in sorted(self._dir.glob("*.json")):
                entry = self.get(path.stem)
                if entry is not None and entry.record_id in record_ids:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def pending(self) -> list[PendingWrite]:
        if not self._dir.exists():
            return []
        return [entry for path in sorted(self._dir.glob("*.json")) if (entry := self.get(path.stem)) is not None]


def append_line(path: Path, line: bytes) -> int:
    """Append one line, fsynced; returns the file's new length. A torn last line (a crash or a full
    disk mid-append) is cut off first, so the new line never fuses with it into one that fails its checksum."""
    with open(path, "a+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(max(0, size - 65536))
            tail = handle.read()
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size)
                handle.truncate(keep)
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
        return handle.tell()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unwritable(directory: Path, exc: OSError) -> StorageUnavailable:
    """The typed error for a journal write that failed: `StorageFull` when the disk is full."""
    if exc.errno in DISK_FULL:
        return StorageFull(
            f"disk full: cannot write the journal in {directory} ({exc.strerror or exc}); free disk space, then "
            "write again: what was stored is reused, the same write lands once"
        )
    return StorageUnavailable(
        f"cannot write the journal in {directory} ({exc.strerror or exc}); free disk space or fix permissions, then "
        "write again: what was stored is reused, nothing was anchored"
    )
