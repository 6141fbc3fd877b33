"""`Monitor`: follow new blocks, evaluate the alert rules, print alerts as JSON lines and post them
to a webhook; survive node restarts and its own.

Each step syncs the audit index (events and transactions) up to the head, evaluates the rules over
the blocks not processed yet, and in one SQLite transaction stores the new alerts (keyed by their
deterministic id, so a repeat is ignored) together with the last processed block. Only then are
alerts printed and posted, each marked once done: a crash before the commit re-evaluates the same
blocks to the same ids; a crash after it prints what was not printed yet. An alert can be printed
twice only if the process dies between printing it and marking it (receivers dedupe on `id`).

An unreachable node (ChainUnavailable) is retried with exponential backoff; processing resumes
from the last processed block, so nothing is missed. A chain reorganisation below the processed
block makes the monitor evaluate the replacement blocks too.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import requests

from ehr_client.audit.config import MonitorConfig
from ehr_client.audit.errors import WebhookRejected, WebhookUnavailable
from ehr_client.audit.index import AuditIndex, index_path
from ehr_client.audit.rules import Alert, evaluate_blocks
from ehr_client.audit.webhook import WebhookSender
from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.errors import ChainUnavailable, ConfigError

log = logging.getLogger("ehr_client.audit")

_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, block_number INTEGER NOT NULL, body TEXT NOT NULL,
    printed INTEGER NOT NULL DEFAULT 0, delivery INTEGER);
CREATE INDEX IF NOT EXISTS alerts_seq ON alerts (seq);
"""
# alerts.delivery: NULL no webhook when stored, 0 to deliver, 1 delivered, 2 refused by the webhook


def print_alert(alert: Alert) -> None:
    """The default sink: one JSON object per line on stdout."""
    sys.stdout.write(json.dumps(alert.to_json(), sort_keys=True) + "\n")
    sys.stdout.flush()


def connect(rpc_url: str, deployment: Deployment, *, timeout: float = 10.0) -> ChainClient:
    """A ChainClient that fails fast when the node is down (the monitor does its own backoff)."""
    try:
        requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                      timeout=timeout).raise_for_status()
    except requests.RequestException as exc:
        raise ChainUnavailable(f"cannot reach the chain node at {rpc_url} ({type(exc).__name__}); "
                               "retrying with backoff") from None
    chain = ChainClient(rpc_url, deployment, timeout=timeout)
    chain.w3.provider.exception_retry_configuration = None  # type: ignore[attr-defined]
    return chain


@dataclass(frozen=True)
class StepResult:
    processed_to: int | None
    head: int
    alerts: list[Alert]

    @property
    def caught_up(self) -> bool:
        return self.processed_to is not None and self.processed_to >= self.head


class MonitorState:
    """The monitor's SQLite state file: processed block, and every alert with its output status."""

    def __init__(self, path: Path, identity: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            self.db.executescript(_STATE_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"the monitor state {self.path} is unreadable ({exc}); move it away to start over") from None
        stored = self.get("identity")
        if stored is None:
            with self.db:
                self.set("identity", identity)
        elif stored != identity:
            raise ConfigError(f"the monitor state {self.path} belongs to another deployment; "
                              "use another --state-dir")

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))

    def get_int(self, key: str) -> int | None:
        value = self.get(key)
        return None if value is None else int(value)

    def commit(self, alerts: list[Alert], last_block: int, *, webhook: bool) -> None:
        with self.db:
            seq = int(self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0])
            for alert in alerts:
                seq += 1
                self.db.execute(
                    "INSERT OR IGNORE INTO alerts (id, seq, block_number, body, printed, delivery) "
                    "VALUES (?, ?, ?, ?, 0, ?)",
                    (alert.id, seq, alert.block_number, json.dumps(alert.to_json(), sort_keys=True),
                     0 if webhook else None))
            self.set("last_block", last_block)

    def pending(self) -> list[tuple[Alert, bool, int | None]]:
        rows = self.db.execute("SELECT body, printed, delivery FROM alerts WHERE printed = 0 OR delivery = 0 "
                               "ORDER BY seq").fetchall()
        return [(Alert.from_json(json.loads(body)), bool(printed), delivery) for body, printed, delivery in rows]

    def mark(self, alert_id: str, *, printed: bool | None = None, delivery: int | None = None) -> None:
        with self.db:
            if printed:
                self.db.execute("UPDATE alerts SET printed = 1 WHERE id = ?", (alert_id,))
            if delivery is not None:
                self.db.execute("UPDATE alerts SET delivery = ? WHERE id = ?", (delivery, alert_id))

    def alerts(self) -> list[Alert]:
        """Every alert ever stored, in the order raised."""
        return [Alert.from_json(json.loads(body))
                for (body,) in self.db.execute("SELECT body FROM alerts ORDER BY seq")]

    def close(self) -> None:
        self.db.close()


class Monitor:
    """Follows a deployment's chain and raises alerts; `run()` loops, `step()` does one round."""

    def __init__(
        self,
        chain: ChainClient | Callable[[], ChainClient],
        *,
        state_dir: Path,
        config: MonitorConfig | None = None,
        emit: Callable[[Alert], None] = print_alert,
        from_block: int | str | None = None,
    ) -> None:
        """`chain`: a client, or a function that connects one (called again after a failure to
        connect). `from_block`: where a first run starts: a block number, "latest" (only new blocks),
        or None (the deployment block: the whole history). Later runs resume where the last stopped."""
        self._connect: Callable[[], ChainClient] = chain if callable(chain) else (lambda: chain)
        self.state_dir = Path(state_dir)
        self.config = config or MonitorConfig()
        self.emit = emit
        self.from_block = from_block
        self.chain: ChainClient | None = None
        self.index: AuditIndex | None = None
        self.state: MonitorState | None = None
        hook = self.config.webhook
        self.webhook = (WebhookSender(hook.url, timeout=hook.timeout_seconds, retries=hook.retries,
                                      backoff=hook.backoff_seconds) if hook.url else None)

    @classmethod
    def for_rpc(cls, rpc_url: str, deployment: Deployment, **options: object) -> Monitor:
        """A monitor that connects to `rpc_url` itself and reconnects after outages."""
        return cls(lambda: connect(rpc_url, deployment), **options)  # type: ignore[arg-type]

    def _ready(self) -> tuple[ChainClient, AuditIndex, MonitorState]:
        if self.chain is None:
            self.chain = self._connect()
        if self.index is None:
            self.index = AuditIndex.open(self.chain, self.state_dir, confirmations=self.config.monitor.confirmations)
        if self.state is None:
            self.state = MonitorState(index_path(self.chain, self.state_dir, kind="monitor"), self.index.identity)
        return self.chain, self.index, self.state

    def _first_block(self, index: AuditIndex, state: MonitorState) -> int:
        first = state.get_int("first_block")
        if first is None:
            if self.from_block == "latest":
                first = index.head() + 1
            elif self.from_block is None:
                first = index.deploy_block
            elif isinstance(self.from_block, int):
                first = max(self.from_block, index.deploy_block)
            else:
                raise ConfigError(f"from_block {self.from_block!r} must be a block number, 'latest' or None")
            with state.db:
                state.set("first_block", first)
                state.set("last_block", first - 1)
        return first

    def step(self) -> StepResult:
        """Process what is new (at most `max_blocks_per_step` blocks) and flush pending output."""
        _, index, state = self._ready()
        first = self._first_block(index, state)
        last = state.get_int("last_block")
        assert last is not None
        limit = self.config.monitor.max_blocks_per_step
        report = index.sync(last + limit, transactions_from=first)
        if report.rolled_back_to is not None and report.rolled_back_to < last:
            last = max(report.rolled_back_to, first - 1)
            log.warning("re-evaluating blocks after %s, replaced by a chain reorganisation", last)
        head = index.head()
        end = min(index.last_block if index.last_block is not None else last, last + limit)
        if end > last:
            alerts = evaluate_blocks(index.db, last + 1, end, self.config)
            state.commit(alerts, end, webhook=self.webhook is not None)
            last = end
        return StepResult(last, head, self.flush())

    def flush(self) -> list[Alert]:
        """Print the alerts not printed yet and post the ones not delivered yet; returns those printed."""
        if self.state is None:
            return []
        printed = []
        webhook_down = False
        for alert, was_printed, delivery in self.state.pending():
            if not was_printed:
                self.emit(alert)
                self.state.mark(alert.id, printed=True)
                printed.append(alert)
            if delivery == 0 and self.webhook is not None and not webhook_down:
                try:
                    self.webhook.send(alert.to_json())
                    self.state.mark(alert.id, delivery=1)
                except WebhookRejected as exc:
                    log.warning("%s", exc)
                    self.state.mark(alert.id, delivery=2)
                except WebhookUnavailable as exc:
                    log.warning("%s", exc)
                    webhook_down = True  # keep the order: retry from this alert next round
        return printed

    def run(self, *, stop: threading.Event | None = None, until_block: int | None = None) -> None:
        """Loop until `stop` is set (or, with `until_block`, until that block was processed)."""
        stop = stop or threading.Event()
        polling = self.config.monitor
        backoff = max(polling.poll_seconds, 0.05)
        while not stop.is_set():
            try:
                result = self.step()
            except ChainUnavailable as exc:
                log.warning("%s; retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, polling.backoff_max_seconds)
                continue
            backoff = max(polling.poll_seconds, 0.05)
            if until_block is not None and result.processed_to is not None and result.processed_to >= until_block:
                return
            if result.caught_up:
                stop.wait(polling.poll_seconds)

    def catch_up(self) -> list[Alert]:
        """Step until the head is processed; returns the alerts printed on the way."""
        printed: list[Alert] = []
        while True:
            result = self.step()
            printed += result.alerts
            if result.caught_up:
                return printed

    def alerts(self) -> list[Alert]:
        """Every alert this monitor's state holds, in the order raised."""
        self._ready()
        assert self.state is not None
        return self.state.alerts()

    def close(self) -> None:
        for closable in (self.index, self.state, self.webhook):
            if closable is not None:
                closable.close()
        self.index = self.state = self.webhook = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def scan_alerts(chain: ChainClient, *, state_dir: Path, config: MonitorConfig | None = None,
                from_block: int | None = None) -> list[Alert]:
    """Evaluate the rules once over the history (deployment block, or `from_block`, to the head)
    and return the alerts in chain order; nothing is printed or sent. What the demo calls."""
    with AuditIndex.open(chain, state_dir) as index:
        start = max(from_block if from_block is not None else index.deploy_block, index.deploy_block)
        report = index.sync(transactions_from=start)
        if report.last_block is None or report.last_block < start:
            return []
        return evaluate_blocks(index.db, start, report.last_block, config or MonitorConfig())
