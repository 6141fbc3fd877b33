"""A local journal of writes: stored but not yet anchored, and acknowledged.

Store first, anchor second: when anchoring fails, the pending entry stays, and the next attempt to
write the same content for the same patient reuses the stored blob and record id instead of
storing a duplicate. Entries are keyed by an HMAC of the content under a key of the writer's, so
the journal never holds health data or an unkeyed hash of it.

Once the anchor is mined (to the configured depth) the write is appended, fsynced, to
`<state_dir>/acknowledged.log` (`json<TAB>sha256-prefix` per line) before the pending entry goes:
what was acknowledged can be re-anchored, under the same id and with the same blob, if a chain
loses it (`EHRClient.recover`). A damaged line or pending file is reported (`JournalDamaged`),
never skipped in silence.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ehr_client.errors import ConfigError, StorageUnavailable


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
            return PendingWrite(**json.loads(path.read_text()))
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
            raise _unwritable(self._dir, exc) from None
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(entry), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._dir / f"{fingerprint}.json")
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise _unwritable(self._dir, exc) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def shares_path(self) -> Path:
        return self._dir.parent / "shares.log"

    def shared(self, cid: str) -> None:
        """Note a key share this writer stored (its CID travels off chain, so only this log keeps it from gc)."""
        try:
            self._dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(self.shares_path, "a") as log:
                log.write(f"{cid}\n")
                log.flush()
                os.fsync(log.fileno())
        except OSError as exc:
            raise _unwritable(self._dir.parent, exc) from None

    def shares(self) -> list[str]:
        try:
            return [line for line in self.shares_path.read_text().split("\n") if line.strip()]
        except FileNotFoundError:
            return []

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
            append_line(self.acknowledged_path, payload + b"\t" + _checksum(payload) + b"\n")
        except OSError as exc:
            raise _unwritable(self._dir.parent, exc) from None

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
        try:
            data = self.acknowledged_path.read_bytes()
        except FileNotFoundError:
            return []
        complete, _, _torn = data.rpartition(b"\n")  # a torn last line was never acknowledged
        entries = []
        for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
            payload, tab, checksum = line.rpartition(b"\t")
            try:
                if not tab or _checksum(payload) != checksum:
                    raise ValueError("checksum mismatch")
                entries.append(PendingWrite(**json.loads(payload)))
            except (ValueError, TypeError) as exc:
                raise JournalDamaged(
                    f"{self.acknowledged_path} is damaged at line {number} ({exc}); copy it aside and remove that "
                    "line to recover the others"
                ) from None
        return entries

    def done(self, fingerprint: str) -> None:
        (self._dir / f"{fingerprint}.json").unlink(missing_ok=True)

    def forget(self, record_ids: set[str]) -> int:
        """Drop the entries of these records (hex ids), e.g. after erasure; returns how many."""
        removed = 0
        if self._dir.exists():
            for path in sorted(self._dir.glob("*.json")):
                try:
                    record_id = json.loads(path.read_text()).get("record_id")
                except (OSError, ValueError, AttributeError):
                    continue
                if record_id in record_ids:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def pending(self) -> list[PendingWrite]:
        if not self._dir.exists():
            return []
        return [entry for path in sorted(self._dir.glob("*.json")) if (entry := self.get(path.stem)) is not None]


def append_line(path: Path, line: bytes) -> None:
    """Append one line, fsynced. A torn last line (a crash or a full disk mid-append) is cut off
    first, so the new line never fuses with it into one that fails its checksum."""
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


def _unwritable(directory: Path, exc: OSError) -> StorageUnavailable:
    return StorageUnavailable(
        f"cannot write the journal in {directory} ({exc.strerror or exc}); free disk space or fix permissions, then "
        "write again: what was stored is reused, nothing was anchored"
    )
