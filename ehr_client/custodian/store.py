"""A custodian's persistent state: one SQLite file (mode 0600, WAL, secure_delete).

Tables: fragments (sealed key fragments by record and grantee), releases and refusals (the
audit log), destructions (what was shredded, when and why), totp (encrypted enrolment secrets
and the last accepted time step), sessions (hashes of MFA session tokens), nonces (signed
requests already seen) and meta (the revocation poller's cursor). Everything survives restarts;
`secure_delete` overwrites deleted fragments in the file instead of leaving them in free pages.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ehr_client.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fragments(
    record_id BLOB NOT NULL, grantee TEXT NOT NULL, patient TEXT NOT NULL,
    sealed BLOB NOT NULL, seal_key_version INTEGER NOT NULL, capsule BLOB NOT NULL,
    delegating_key BLOB NOT NULL, receiving_key BLOB NOT NULL, threshold INTEGER NOT NULL, shares INTEGER NOT NULL,
    delegation BLOB NOT NULL, deposited_at INTEGER NOT NULL, deposited_block INTEGER NOT NULL,
    PRIMARY KEY(record_id, grantee));
CREATE INDEX IF NOT EXISTS fragments_pair ON fragments(patient, grantee);
CREATE TABLE IF NOT EXISTS releases(
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, record_id BLOB NOT NULL, patient TEXT NOT NULL,
    grantee TEXT NOT NULL, access_tx TEXT NOT NULL UNIQUE, access_block INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS releases_patient ON releases(patient);
CREATE TABLE IF NOT EXISTS refusals(
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, action TEXT NOT NULL, record_id BLOB, caller TEXT,
    reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS destructions(
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, record_id BLOB NOT NULL, patient TEXT NOT NULL,
    grantee TEXT NOT NULL, cause TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS destructions_record ON destructions(record_id);
CREATE TABLE IF NOT EXISTS totp(
    grantee TEXT PRIMARY KEY, secret BLOB NOT NULL, last_step INTEGER NOT NULL, enrolled_at INTEGER NOT NULL,
    key_version INTEGER);
CREATE TABLE IF NOT EXISTS sessions(
    token_hash BLOB PRIMARY KEY, grantee TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nonces(
    signer TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY(signer, nonce));
"""


@dataclass(frozen=True)
class Fragment:
    """One sealed key fragment: lets this custodian re-encrypt one record's capsule for one grantee."""

    record_id: bytes
    grantee: str
    patient: str
    sealed: bytes
    seal_key_version: int
    capsule: bytes
    delegating_key: bytes
    receiving_key: bytes
    threshold: int
    shares: int
    delegation: bytes
    deposited_at: int
    deposited_block: int


@dataclass(frozen=True)
class Release:
    """A re-encryption fragment handed out, with the on-chain access request it answered."""

    at: int
    record_id: bytes
    patient: str
    grantee: str
    access_tx: str
    access_block: int


@dataclass(frozen=True)
class Refusal:
    at: int
    action: str
    record_id: bytes | None
    caller: str | None
    reason: str


@dataclass(frozen=True)
class Destruction:
    at: int
    record_id: bytes
    patient: str
    grantee: str
    cause: str


class CustodianStore:
    """Thread-safe access to the custodian's SQLite file (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(totp)")}
            if "key_version" not in columns:  # files from before secrets recorded their sealing key
                self._db.execute("ALTER TABLE totp ADD COLUMN key_version INTEGER")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the custodian database {self.path}: {exc}; check the path and its permissions"
            ) from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- fragments -------------------------------------------------------------------------

    def put_fragments(self, fragments: list[Fragment]) -> None:
        """Store fragments, replacing any earlier one for the same record and grantee."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO fragments VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(f.record_id, f.grantee, f.patient, f.sealed, f.seal_key_version, f.capsule, f.delegating_key,
                  f.receiving_key, f.threshold, f.shares, f.delegation, f.deposited_at, f.deposited_block)
                 for f in fragments],
            )

    def fragment(self, record_id: bytes, grantee: str) -> Fragment | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM fragments WHERE record_id=? AND grantee=?",
                                   (record_id, grantee)).fetchone()
        return Fragment(*row) if row else None

    def count_fragments(self, *, record_id: bytes | None = None) -> int:
        with self._lock:
            if record_id is None:
                return int(self._db.execute("SELECT COUNT(*) FROM fragments").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM fragments WHERE record_id=?", (record_id,)).fetchone()[0])

    def destroy_record(self, record_id: bytes, *, cause: str, now: int) -> int:
        """Delete every fragment of a record; returns how many were deleted."""
        return self._destroy("record_id=?", (record_id,), cause=cause, now=now)

    def destroy_pair(self, patient: str, grantee: str, *, up_to_block: int, cause: str, now: int) -> int:
        """Delete a grantee's fragments of a patient's records deposited at or before `up_to_block`
        (a fragment deposited after a revocation belongs to a later grant)."""
        return self._destroy("patient=? AND grantee=? AND deposited_block<=?", (patient, grantee, up_to_block),
                             cause=cause, now=now)

    def _destroy(self, where: str, args: tuple[object, ...], *, cause: str, now: int) -> int:
        with self._tx() as db:
            rows = db.execute(f"SELECT record_id, patient, grantee FROM fragments WHERE {where}", args).fetchall()
            db.execute(f"DELETE FROM fragments WHERE {where}", args)
            db.executemany("INSERT INTO destructions(at, record_id, patient, grantee, cause) VALUES (?,?,?,?,?)",
                           [(now, r[0], r[1], r[2], cause) for r in rows])
        if rows:
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(rows)

    def destructions(self, *, record_id: bytes | None = None) -> list[Destruction]:
        with self._lock:
            if record_id is None:
                rows = self._db.execute("SELECT at, record_id, patient, grantee, cause FROM destructions ORDER BY id")
            else:
                rows = self._db.execute("SELECT at, record_id, patient, grantee, cause FROM destructions "
                                        "WHERE record_id=? ORDER BY id", (record_id,))
            return [Destruction(*r) for r in rows.fetchall()]

    # --- audit log -------------------------------------------------------------------------

    def log_release(self, release: Release) -> bool:
        """Record a release; False when this access request was already answered (nothing written)."""
        try:
            with self._tx() as db:
                db.execute("INSERT INTO releases(at, record_id, patient, grantee, access_tx, access_block) "
                           "VALUES (?,?,?,?,?,?)",
                           (release.at, release.record_id, release.patient, release.grantee, release.access_tx,
                            release.access_block))
        except sqlite3.IntegrityError:
            return False
        return True

    def access_request_used(self, access_tx: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM releases WHERE access_tx=?", (access_tx,)).fetchone() is not None

    def releases(self, *, patient: str | None = None, record_id: bytes | None = None) -> list[Release]:
        query = "SELECT at, record_id, patient, grantee, access_tx, access_block FROM releases"
        args: list[object] = []
        conditions = []
        if patient is not None:
            conditions.append("patient=?")
            args.append(patient)
        if record_id is not None:
            conditions.append("record_id=?")
            args.append(record_id)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        with self._lock:
            return [Release(*r) for r in self._db.execute(query + " ORDER BY id", args).fetchall()]

    def log_refusal(self, refusal: Refusal) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO refusals(at, action, record_id, caller, reason) VALUES (?,?,?,?,?)",
                       (refusal.at, refusal.action, refusal.record_id, refusal.caller, refusal.reason))

    def refusals(self, *, record_id: bytes | None = None, caller: str | None = None) -> list[Refusal]:
        query = "SELECT at, action, record_id, caller, reason FROM refusals"
        args: list[object] = []
        conditions = []
        if record_id is not None:
            conditions.append("record_id=?")
            args.append(record_id)
        if caller is not None:
            conditions.append("caller=?")
            args.append(caller)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        with self._lock:
            return [Refusal(*r) for r in self._db.execute(query + " ORDER BY id", args).fetchall()]

    def count_refusals(self, *, caller: str, action: str, reason: str, since: int) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM refusals WHERE caller=? AND action=? AND reason=? AND at>=?",
                                   (caller, action, reason, since)).fetchone()
        return int(row[0])

    # --- second factor ---------------------------------------------------------------------

    def enroll_totp(self, grantee: str, sealed_secret: bytes, *, key_version: int, now: int) -> bool:
        """Store a grantee's TOTP secret, sealed under the custodian's X25519 key `key_version`;
        False (and nothing changed) if already enrolled."""
        try:
            with self._tx() as db:
                db.execute("INSERT INTO totp(grantee, secret, last_step, enrolled_at, key_version) VALUES (?,?,?,?,?)",
                           (grantee, sealed_secret, -1, now, key_version))
        except sqlite3.IntegrityError:
            return False
        return True

    def totp_secret(self, grantee: str) -> tuple[bytes, int | None] | None:
        """(sealed secret, version of the key it is sealed under; None for files that predate it)."""
        with self._lock:
            row = self._db.execute("SELECT secret, key_version FROM totp WHERE grantee=?", (grantee,)).fetchone()
        return (bytes(row[0]), None if row[1] is None else int(row[1])) if row else None

    def reseal_totp(self, grantee: str, sealed_secret: bytes, *, key_version: int) -> None:
        """Replace a grantee's sealed secret (same secret, the custodian's current key)."""
        with self._tx() as db:
            db.execute("UPDATE totp SET secret=?, key_version=? WHERE grantee=?", (sealed_secret, key_version, grantee))

    def count_refusal_rows(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM refusals").fetchone()[0])

    def consume_totp_step(self, grantee: str, step: int) -> bool:
        """Accept time step `step` once: True only if it is later than every step used before."""
        with self._tx() as db:
            cursor = db.execute("UPDATE totp SET last_step=? WHERE grantee=? AND last_step<?", (step, grantee, step))
            return cursor.rowcount == 1

    def put_session(self, token_hash: bytes, grantee: str, *, expires_at: int, now: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE expires_at<=?", (now,))
            db.execute("INSERT INTO sessions VALUES (?,?,?)", (token_hash, grantee, expires_at))

    def session(self, token_hash: bytes, *, now: int) -> str | None:
        """The grantee a live session token belongs to."""
        with self._lock:
            row = self._db.execute("SELECT grantee FROM sessions WHERE token_hash=? AND expires_at>?",
                                   (token_hash, now)).fetchone()
        return str(row[0]) if row else None

    # --- replay protection ----------------------------------------------------------------

    def claim_nonce(self, signer: str, nonce: str, *, expires_at: int, now: int) -> bool:
        """True the first time (signer, nonce) is seen; kept until `expires_at`, when the request
        it came with would be refused as expired anyway."""
        try:
            with self._tx() as db:
                db.execute("DELETE FROM nonces WHERE expires_at<?", (now,))
                db.execute("INSERT INTO nonces VALUES (?,?,?)", (signer, nonce, expires_at))
        except sqlite3.IntegrityError:
            return False
        return True

    # --- poller cursor --------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value))
