"""`AuditIndex`: a local SQLite copy of every event of a deployment, kept up to date incrementally.

One `eth_getLogs` over all watched contract addresses per page of blocks (decoded by topic), the
block times and transaction senders of a page in two batched requests, and one SQLite transaction
per page that also moves the cursor, so an interrupted sync resumes where it stopped. Rows are keyed
by (tx_hash, log_index): indexing a block twice changes nothing.

Reorganisations: after each page the hash of its last block is kept as a checkpoint (the newest
256). A sync first compares the newest checkpoint with the chain; if it differs, it walks back to
the newest checkpoint the chain still agrees with and drops everything after it (or everything,
if none agrees) before indexing again.

Reverted transactions emit no events. With `transactions_from` the index also scans blocks
(full transactions, batched) for transactions to the watched contracts and keeps each one's
sender, function, status and, for reverts, the custom error (replayed on the parent block).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_utils import to_checksum_address

from ehr_client.audit import queries
from ehr_client.audit._rpc import Rpc, quantity
from ehr_client.audit.decode import ContractSource, DecodedLog, Decoder, deployment_sources, plain
from ehr_client.audit.facts import call_facts, event_facts
from ehr_client.audit.queries import AuditRow
from ehr_client.chain.client import LOG_PAGE_BLOCKS, ChainClient, iter_pages
from ehr_client.chain.reverts import decode_revert
from ehr_client.errors import ChainUnavailable, ConfigError

log = logging.getLogger("ehr_client.audit")

SCHEMA_VERSION = "1"
CHECKPOINTS_KEPT = 256
TX_SCAN_BLOCKS = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    tx_hash TEXT NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL, block_hash TEXT NOT NULL,
    tx_index INTEGER NOT NULL, timestamp INTEGER NOT NULL, contract TEXT NOT NULL, name TEXT NOT NULL,
    sender TEXT, actor TEXT, patient TEXT, subject TEXT, record_id TEXT, related_record TEXT,
    detail TEXT NOT NULL, args TEXT NOT NULL,
    PRIMARY KEY (tx_hash, log_index));
CREATE INDEX IF NOT EXISTS events_position ON events (block_number, tx_index, log_index);
CREATE INDEX IF NOT EXISTS events_patient ON events (patient, block_number);
CREATE INDEX IF NOT EXISTS events_actor ON events (actor, block_number);
CREATE INDEX IF NOT EXISTS events_subject ON events (subject, block_number);
CREATE INDEX IF NOT EXISTS events_record ON events (record_id);
CREATE INDEX IF NOT EXISTS events_related ON events (related_record);
CREATE INDEX IF NOT EXISTS events_name ON events (name, block_number);
CREATE TABLE IF NOT EXISTS transactions (
    tx_hash TEXT PRIMARY KEY, block_number INTEGER NOT NULL, block_hash TEXT NOT NULL, tx_index INTEGER NOT NULL,
    timestamp INTEGER NOT NULL, contract TEXT NOT NULL, function TEXT NOT NULL, sender TEXT NOT NULL,
    status INTEGER NOT NULL, error TEXT, error_args TEXT, actor TEXT, patient TEXT, subject TEXT, record_id TEXT,
    related_record TEXT, detail TEXT NOT NULL, args TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transactions_position ON transactions (block_number, tx_index);
CREATE INDEX IF NOT EXISTS transactions_patient ON transactions (patient, block_number);
CREATE TABLE IF NOT EXISTS checkpoints (block_number INTEGER PRIMARY KEY, block_hash TEXT NOT NULL);
"""


@dataclass(frozen=True)
class SyncReport:
    """What one `sync` did. `rolled_back_to`: after a reorg, the last block that was kept."""

    last_block: int | None
    events: int
    transactions: int
    rolled_back_to: int | None = None


def _block_hash(block: Any | None) -> str | None:
    return None if block is None else str(block["hash"]).lower()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _contracts_added(stored: str, current: str) -> bool:
    """Whether `current` is `stored` with more contracts (same chain and deployment)."""
    try:
        old, new = json.loads(stored), json.loads(current)
        same = {k: v for k, v in old.items() if k != "contracts"} == {k: v for k, v in new.items() if k != "contracts"}
        return bool(same and set(old["contracts"]) < set(new["contracts"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def index_path(chain: ChainClient, state_dir: Path, *, kind: str = "audit") -> Path:
    """Where a deployment's index (or, with kind="monitor", monitor state) lives under `state_dir`."""
    registry = chain.deployment.address("RecordRegistry").lower()
    return Path(state_dir) / f"{kind}-{chain.chain_id}-{registry[2:12]}.sqlite"


class AuditIndex:
    """The events (and, optionally, the transactions) of one deployment in a local SQLite file."""

    def __init__(
        self,
        chain: ChainClient,
        path: Path,
        *,
        sources: Iterable[ContractSource] | None = None,
        confirmations: int = 0,
        page_blocks: int = LOG_PAGE_BLOCKS,
    ) -> None:
        self.chain = chain
        self.path = Path(path)
        self.confirmations = confirmations
        self.page_blocks = page_blocks
        self.deploy_block = chain.deployment.deploy_block
        self.decoder = Decoder(list(sources) if sources is not None else deployment_sources(chain.deployment))
        self.rpc = Rpc(chain.w3, chain.rpc_url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"the audit index {self.path} is unreadable ({exc}); delete it to rebuild it") from None
        self._check_identity()

    @classmethod
    def open(cls, chain: ChainClient, state_dir: Path, **options: Any) -> AuditIndex:
        """The index of `chain`'s deployment under `state_dir` (created on first use)."""
        return cls(chain, index_path(chain, state_dir), **options)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> AuditIndex:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- metadata -----------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: object | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))

    def _check_identity(self) -> None:
        d = self.chain.deployment
        identity = _json({"chainId": d.chain_id, "deployBlock": d.deploy_block,
                          "contracts": sorted(s.address.lower() for s in self.decoder.sources)})
        stored = self._meta("identity")
        if stored is None:
            with self.db:
                self._set_meta("schema", SCHEMA_VERSION)
                self._set_meta("identity", identity)
        elif self._meta("schema") == SCHEMA_VERSION and _contracts_added(stored, identity):
            # A contract joined the deployment (the claim registry, `ehr claim deploy`): index its
            # events from the deploy block too. Rows are keyed by (tx, log index), so the rescan
            # rewrites what was indexed and adds the rest.
            with self.db:
                self._set_meta("identity", identity)
                for key in ("last_block", "tx_from", "tx_to"):
                    self._set_meta(key, None)
        elif stored != identity or self._meta("schema") != SCHEMA_VERSION:
            raise ConfigError(
                f"the audit index {self.path} belongs to another deployment or index version; "
                "delete it (it is rebuilt from the chain) or use another state directory"
            )

    @property
    def identity(self) -> str:
        """Which chain, deployment and contracts this index holds (a JSON string)."""
        return self._meta("identity") or ""

    @property
    def last_block(self) -> int | None:
        """The last block whose events are indexed (None before the first sync)."""
        value = self._meta("last_block")
        return None if value is None else int(value)

    @property
    def transactions_range(self) -> tuple[int, int] | None:
        """The contiguous block range scanned for transactions, if any."""
        low, high = self._meta("tx_from"), self._meta("tx_to")
        return None if low is None or high is None else (int(low), int(high))

    # --- syncing ------------------------------------------------------------------------------

    def head(self) -> int:
        """The newest block the index may take in (the node's head minus `confirmations`)."""
        return self.rpc.block_number() - self.confirmations

    def sync(self, to_block: int | None = None, *, transactions_from: int | None = None) -> SyncReport:
        """Index new events up to `to_block` (default: the head); scan transactions too when
        `transactions_from` is given or an earlier sync scanned them."""
        rolled_back_to = self._rewind_if_reorganised()
        head = self.head()
        target = head if to_block is None else min(to_block, head)
        last = self.last_block
        start = self.deploy_block if last is None else last + 1
        events = 0
        for page_start, page_end in iter_pages(start, target, self.page_blocks):
            events += self._index_page(page_start, page_end)
        transactions = 0
        if (transactions_from is not None or self.transactions_range is not None) and self.last_block is not None:
            transactions = self._scan_transactions(transactions_from, self.last_block)
        return SyncReport(self.last_block, events, transactions, rolled_back_to)

    def _index_page(self, start: int, end: int) -> int:
        for _ in range(3):
            logs = [log for log in self.rpc.logs(self.decoder.addresses, start, end) if not log.get("removed")]
            decoded = [d for d in map(self.decoder.decode_log, logs) if d is not None]
            # Full blocks where events are: their times and the senders of their transactions.
            blocks = self.rpc.blocks({d.block_number for d in decoded}, full=True)
            if end not in blocks:
                blocks.update(self.rpc.blocks([end]))
            if blocks[end] is None:
                raise ChainUnavailable(f"the node lost block {end} while it was being indexed; retry shortly")
            if all(_block_hash(blocks[d.block_number]) == d.block_hash for d in decoded):
                break
        else:
            raise ChainUnavailable(f"the chain kept reorganising while blocks {start}..{end} were indexed; retry shortly")
        senders = {str(tx["hash"]).lower(): to_checksum_address(tx["from"])
                   for number in {d.block_number for d in decoded} for tx in blocks[number]["transactions"]}  # type: ignore[index]
        with self.db:
            for d in decoded:
                self._insert_event(d, quantity(blocks[d.block_number]["timestamp"]), senders.get(d.tx_hash))  # type: ignore[index]
            self._set_meta("last_block", end)
            self._checkpoint(end, str(_block_hash(blocks[end])))
        return len(decoded)

    def _insert_event(self, d: DecodedLog, timestamp: int, sender: str | None) -> None:
        facts = event_facts(d.contract, d.name, d.args, sender)
        patient = facts.patient
        if patient is None and facts.record_id is not None and d.contract == "RecordRegistry":
            patient = queries.patient_of_record(self.db, facts.record_id)
        self.db.execute(
            "INSERT OR REPLACE INTO events (tx_hash, log_index, block_number, block_hash, tx_index, timestamp, contract, "
            "name, sender, actor, patient, subject, record_id, related_record, detail, args) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (d.tx_hash, d.log_index, d.block_number, d.block_hash, d.tx_index, timestamp, d.contract, d.name, sender,
             facts.actor, patient, facts.subject, facts.record_id, facts.related_record, facts.detail, _json(d.args)),
        )

    def _checkpoint(self, number: int, block_hash: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO checkpoints (block_number, block_hash) VALUES (?, ?)",
                        (number, block_hash))
        self.db.execute("DELETE FROM checkpoints WHERE block_number NOT IN "
                        "(SELECT block_number FROM checkpoints ORDER BY block_number DESC LIMIT ?)", (CHECKPOINTS_KEPT,))

    def _rewind_if_reorganised(self) -> int | None:
        checkpoints = self.db.execute(
            "SELECT block_number, block_hash FROM checkpoints ORDER BY block_number DESC").fetchall()
        if not checkpoints:
            return None
        newest, newest_hash = checkpoints[0]
        if _block_hash(self.rpc.blocks([newest])[newest]) == newest_hash:
            return None
        chain_blocks = self.rpc.blocks([number for number, _ in checkpoints])
        keep = next((number for number, stored in checkpoints if _block_hash(chain_blocks[number]) == stored), None)
        kept = keep if keep is not None else self.deploy_block - 1
        log.warning("chain reorganisation below block %s: dropping indexed blocks after %s", newest, kept)
        with self.db:
            for table in ("events", "transactions", "checkpoints"):
                self.db.execute(f"DELETE FROM {table} WHERE block_number > ?", (kept,))
            self._set_meta("last_block", keep)
            tx_range = self.transactions_range
            if tx_range is not None:
                if tx_range[0] > kept:
                    self._set_meta("tx_from", None)
                    self._set_meta("tx_to", None)
                else:
                    self._set_meta("tx_to", min(tx_range[1], kept))
        return kept

    def _scan_transactions(self, transactions_from: int | None, target: int) -> int:
        scanned = self.transactions_range
        first = max(transactions_from if transactions_from is not None else self.deploy_block, self.deploy_block)
        count = 0
        if scanned is None:
            for page_start, page_end in iter_pages(first, target, TX_SCAN_BLOCKS):
                count += self._scan_page(page_start, page_end, (first, page_end))
            return count
        low, high = scanned
        if first < low:
            for page_start, page_end in iter_pages(first, low - 1, TX_SCAN_BLOCKS):
                count += self._scan_page(page_start, page_end, (low, high) if page_end < low - 1 else (first, high))
        low = min(low, first)
        for page_start, page_end in iter_pages(high + 1, target, TX_SCAN_BLOCKS):
            count += self._scan_page(page_start, page_end, (low, page_end))
        return count

    def _scan_page(self, start: int, end: int, covered: tuple[int, int]) -> int:
        blocks = self.rpc.blocks(range(start, end + 1), full=True)
        candidates: list[tuple[Any, Any]] = []
        for number in range(start, end + 1):
            block = blocks[number]
            if block is None:
                raise ChainUnavailable(f"the node does not have block {number} (yet); retry shortly")
            candidates += [(block, tx) for tx in block["transactions"]
                           if tx.get("to") and self.decoder.contract_name(str(tx["to"])) is not None]
        receipts = self.rpc.receipts([str(tx["hash"]) for _, tx in candidates])
        rows = []
        for block, tx in candidates:
            receipt = receipts[str(tx["hash"])]
            if receipt is None:
                raise ChainUnavailable(f"the node has no receipt for {tx['hash']}; retry shortly")
            rows.append(self._transaction_row(block, tx, quantity(receipt["status"])))
        with self.db:
            for row in rows:
                self.db.execute(
                    "INSERT OR REPLACE INTO transactions (tx_hash, block_number, block_hash, tx_index, timestamp, "
                    "contract, function, sender, status, error, error_args, actor, patient, subject, record_id, "
                    "related_record, detail, args) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            self._set_meta("tx_from", covered[0])
            self._set_meta("tx_to", covered[1])
        return len(rows)

    def _transaction_row(self, block: Any, tx: Any, status: int) -> tuple[Any, ...]:
        to = str(tx["to"])
        call = self.decoder.decode_call(to, tx["input"])
        function, args = (call.function, call.args) if call else ("unknown", {})
        error: str | None = None
        error_args: str | None = None
        if status == 0:
            data = self.rpc.replay_revert(tx)
            decoded = decode_revert(data) if data else None
            if decoded is not None:
                error, error_args = decoded[0], _json(plain(decoded[1]))
        sender = to_checksum_address(tx["from"])
        facts = call_facts(function, args, sender)
        patient = facts.patient
        if patient is None and facts.record_id is not None:
            patient = queries.patient_of_record(self.db, facts.record_id)
        return (str(tx["hash"]).lower(), quantity(block["number"]), _block_hash(block), quantity(tx["transactionIndex"]),
                quantity(block["timestamp"]), self.decoder.contract_name(to), function, sender, status, error,
                error_args, facts.actor, patient, facts.subject, facts.record_id, facts.related_record, facts.detail,
                _json(args))

    # --- reading ------------------------------------------------------------------------------

    def trail(self, **filters: Any) -> list[AuditRow]:
        """See :func:`ehr_client.audit.queries.trail` for the filters."""
        return queries.trail(self.db, **filters)

    def grants(self, patient: str | None = None) -> list[AuditRow]:
        return queries.grant_history(self.db, patient)

    def count(self, table: str = "events") -> int:
        if table not in ("events", "transactions"):
            raise ValueError(f"unknown table {table!r}")
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def positions(self) -> Sequence[tuple[str, int]]:
        """(tx_hash, log_index) of every indexed event, in chain order (for checks and tests)."""
        return [(str(h), int(i)) for h, i in self.db.execute(
            "SELECT tx_hash, log_index FROM events ORDER BY block_number, tx_index, log_index")]
