"""A local journal of writes that are stored but not yet anchored.

Store first, anchor second: when anchoring fails, the entry stays, and the next attempt to write
the same content for the same patient reuses the stored blob and record id instead of storing a
duplicate. Entries are keyed by an HMAC of the content under a key of the writer's, so the
journal never holds health data or an unkeyed hash of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class PendingWrite:
    record_id: str
    patient: str
    cid: str
    content_hash: str
    scope: int
    previous_id: str | None


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
        try:
            return PendingWrite(**json.loads((self._dir / f"{fingerprint}.json").read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            (self._dir / f"{fingerprint}.json").unlink(missing_ok=True)
            return None

    def put(self, fingerprint: str, entry: PendingWrite) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".pending.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(entry), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._dir / f"{fingerprint}.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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
        entries = []
        for path in sorted(self._dir.glob("*.json")):
            try:
                entries.append(PendingWrite(**json.loads(path.read_text())))
            except (ValueError, TypeError):
                continue
        return entries
