"""`make soak` (`python -m bench.soak`): writers SIGKILLed at random against a local Anvil that is
itself killed now and then, then recovery and an audit of the ledger. Not part of `make test`.

Two writer processes (`bench._soak_writer`), each a patient writing numbered records to itself,
one by single writes and one in batches, run against an Anvil started with the project's durable
settings (`AnvilNode` with `--state` dumped every second). Each writer is SIGKILLed after a random
time and started again (it retries the write it was in, then goes on); now and then the node is
SIGKILLed too and restarted from its dump, after which `recover` anchors again what the chain lost.
At the end every writer settles (finishes what it attempted), `recover` runs once more and the
audit counts, against the writers' ledgers (`ack N` = the caller was told the write succeeded):
lost (acknowledged, not on chain), duplicated (one content on chain twice), unexpected (on chain,
never attempted), orphans (stored blobs no record references after `gc`). Prints the totals and
writes bench/results/soak.json.

EHR_SOAK_MINUTES (default 3), EHR_SOAK_SEED (default 1), EHR_SOAK_NODE_KILL_EVERY (seconds, mean,
default 45), EHR_SOAK_BATCH (records per batch, default 4).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._soak_writer import read_ledger, soak_record
from bench._world import dev_identity
from ehr_client.batch.gc import collect, referenced_on_chain
from ehr_client.batch.recover import recover
from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.client import EHRClient, Identity
from ehr_client.dev.node import AnvilNode
from ehr_client.records import canonicalize
from ehr_client.storage import LocalStore

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "soak.json"
TIMEOUT = 10.0


@dataclass
class Writer:
    name: str
    identity: Identity
    batch: int
    root: Path
    process: subprocess.Popen[bytes] | None = None
    kill_at: float | None = None  # set once the process has started writing
    ledger_size: int = 0
    kills: int = 0
    starts: int = 0
    exits: Counter[str] = field(default_factory=Counter)

    @property
    def state(self) -> Path:
        return self.root / "state" / self.name

    @property
    def ledger(self) -> Path:
        return self.root / f"ledger-{self.name}.txt"

    def start(self, rpc: str, deployment: Any, store: Path, *, settle: bool = False) -> None:
        config = self.root / f"{self.name}.json"
        config.write_text(json.dumps({
            "rpc": rpc, "deployment": deployment.to_json(), "wallet": self.identity.account.key.hex(),
            "x25519": self.identity.current_key[1].hex(), "store": str(store), "state": str(self.state),
            "name": self.name, "ledger": str(self.ledger), "batch": self.batch, "settle": settle,
            "timeout": TIMEOUT}))
        log = open(self.root / f"{self.name}.log", "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "bench._soak_writer", str(config)], cwd=REPO,
                                        stdout=log, stderr=log)
        log.close()
        self.starts += 1
        self.kill_at = None
        self.ledger_size = self.ledger.stat().st_size if self.ledger.exists() else 0

    def writing(self) -> bool:
        """Whether it has logged an attempt since it started (the interpreter's start takes seconds)."""
        return self.ledger.exists() and self.ledger.stat().st_size > self.ledger_size

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.kills += 1
        if self.process is not None:
            self.process.wait()
        self.process = None

    def reap(self) -> bool:
        """Whether the process ended on its own (its exit code is counted)."""
        if self.process is None or self.process.poll() is None:
            return False
        self.exits[str(self.process.returncode)] += 1
        self.process = None
        return True


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def main() -> int:
    minutes = _env("EHR_SOAK_MINUTES", 3)
    rng = random.Random(int(_env("EHR_SOAK_SEED", 1)))
    node_kill_every = _env("EHR_SOAK_NODE_KILL_EVERY", 45)
    batch = int(_env("EHR_SOAK_BATCH", 4))
    root = Path(tempfile.mkdtemp(prefix="ehr-soak-"))
    chain_state, store_dir = root / "chain-state.json", root / "store"
    node = AnvilNode(log_path=root / "anvil-0.log", state_path=chain_state).start()
    node_kills, recovered = 0, Counter[str]()
    try:
        gov = dev_identity(0)
        deployment = deploy_suite(node.rpc_url, gov.account, network="soak", governors=[gov.address], threshold=1)
        writers = [Writer("single", dev_identity(1), 1, root), Writer("batched", dev_identity(2), batch, root)]

        def client(w: Writer, rpc: str) -> EHRClient:
            return EHRClient(ChainClient(rpc, deployment, timeout=TIMEOUT), LocalStore(store_dir), w.identity,
                             state_dir=w.state)

        for w in writers:
            patient = client(w, node.rpc_url)
            patient.register_patient()
            patient.publish_key()
        time.sleep(2.5)  # the deployment and the patients are in a dump before anything is killed

        def recover_all(rpc: str) -> None:
            for w in writers:
                recovered.update(r.outcome for r in recover(client(w, rpc)))

        started = time.monotonic()
        end = started + minutes * 60
        next_node_kill = started + rng.expovariate(1 / node_kill_every)
        print(f"soak: {minutes:g} min, writers single and batched ({batch} a batch), node killed every "
              f"~{node_kill_every:g} s; work dir {root}", flush=True)
        while time.monotonic() < end:
            now = time.monotonic()
            for w in writers:
                w.reap()
                if w.process is None:
                    w.start(node.rpc_url, deployment, store_dir)
                elif w.kill_at is None and w.writing():
                    w.kill_at = now + rng.uniform(0.0, 5.0)  # at a random point of its writes
                elif w.kill_at is not None and now >= w.kill_at:
                    w.kill()
            if now >= next_node_kill:
                assert node.pid is not None
                os.killpg(node.pid, signal.SIGKILL)  # mid-write: no clean exit, the last second is lost
                node_kills += 1
                time.sleep(rng.uniform(0.2, 1.5))
                for w in writers:
                    w.kill()
                node.stop()
                node = AnvilNode(log_path=root / f"anvil-{node_kills}.log", state_path=chain_state).start()
                recover_all(node.rpc_url)
                next_node_kill = time.monotonic() + rng.expovariate(1 / node_kill_every)
                print(f"  node killed and restarted ({node_kills}); recovered so far: {dict(recovered)}", flush=True)
            time.sleep(0.1)
        for w in writers:
            w.kill()

        # The users come back: each writer finishes what it attempted, then recovery and gc.
        for w in writers:
            w.start(node.rpc_url, deployment, store_dir, settle=True)
            assert w.process is not None
            w.process.wait(timeout=600)
            settled = w.process.returncode
            w.process = None
            if settled != 0:
                print(f"settling {w.name} failed: see {root / (w.name + '.log')}", flush=True)
        recover_all(node.rpc_url)
        report = _audit(writers, client, node.rpc_url, deployment, store_dir, recovered)
        report.update({"minutes": minutes, "node_kills": node_kills, "node_kill_every_s": node_kill_every,
                       "batch_size": batch, "seed": int(_env("EHR_SOAK_SEED", 1)),
                       "writers": {w.name: {"starts": w.starts, "sigkills": w.kills, "exits": dict(w.exits)}
                                   for w in writers}})
    finally:
        node.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("acknowledged", "attempted", "lost", "duplicated", "unexpected",
                                               "orphans_after_gc", "node_kills", "recovered")}, indent=None))
    print(f"writers: {report['writers']}\nwrote {RESULTS}")
    bad = report["lost"] or report["duplicated"] or report["unexpected"] or report["orphans_after_gc"]
    if not bad:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if bad else 0


def _audit(writers: list[Writer], client: Any, rpc: str, deployment: Any, store_dir: Path,
           recovered: Counter[str]) -> dict[str, Any]:
    acknowledged = attempted = lost = duplicated = unexpected = 0
    details: dict[str, Any] = {}
    for w in writers:
        tried, acked = read_ledger(w.ledger)
        me = client(w, rpc)
        listed = {"0x" + r.record_id.hex(): r for r in me.list_records(me.address)}
        w_lost = sorted(n for n, rid in acked.items() if rid not in listed)
        # Every acknowledged record is its own id; anything else on chain is read (a read is a
        # transaction, so only these): a second copy of an attempted record, or unexpected.
        expected = {canonicalize(soak_record(w.name, n)): n for n in tried}
        acked_ids = set(acked.values())
        extra = Counter(me.read_record(r.record_id).data for rid, r in listed.items() if rid not in acked_ids)
        w_dup: list[int] = []
        w_unexpected = 0
        for content, copies in extra.items():
            n = expected.get(content)
            if n is None:
                w_unexpected += copies
            else:  # beside its acknowledged record, or one landing of a write never acknowledged
                w_dup += [n] * (copies if n in acked else copies - 1)
        if acked:  # and a sample reads back as what was written
            n, rid = max(acked.items())
            assert rid not in listed or me.read_record(listed[rid].record_id).data == canonicalize(
                soak_record(w.name, n)), f"{w.name} record {n} reads back as something else"
        on_chain = listed
        details[w.name] = {"attempted": len(tried), "acknowledged": len(acked), "on_chain": len(on_chain),
                           "lost": w_lost, "duplicated": w_dup, "unexpected": w_unexpected,
                           "pending_after_settle": len(me.journal.pending())}
        acknowledged += len(acked)
        attempted += len(tried)
        lost += len(w_lost)
        duplicated += len(w_dup)
        unexpected += w_unexpected
    store = LocalStore(store_dir)
    chain = ChainClient(rpc, deployment, timeout=TIMEOUT)
    gc = collect(chain, store, [w.state for w in writers], grace=0, delete=True)
    referenced = referenced_on_chain(chain, store)
    orphans = [str(cid) for cid, _ in store.blobs() if str(cid) not in referenced]
    return {"acknowledged": acknowledged, "attempted": attempted, "lost": lost, "duplicated": duplicated,
            "unexpected": unexpected, "gc_removed": gc.removed, "orphans_after_gc": len(orphans),
            "recovered": dict(recovered), "by_writer": details}


if __name__ == "__main__":
    sys.exit(main())
