"""One soak writer process (`python -m bench._soak_writer CONFIG`), killed at random by `bench.soak`.

It writes the soak's numbered records for one patient, singly or in batches, starting from the
first number its ledger does not show acknowledged, until killed (or, with `settle`, until every
record it ever attempted is acknowledged). Before a write it appends `attempt N`, after the call
returns `ack N 0x<record id>`, each line fsynced: the ledger of what the caller was told.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import EHRError
from ehr_client.storage import LocalStore


def soak_record(writer: str, n: int) -> dict[str, object]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": f"soak {writer} {n}"},
            "valueQuantity": {"value": n, "unit": "kg"}}


def read_ledger(path: Path) -> tuple[set[int], dict[int, str]]:
    """Attempted numbers, and acknowledged number -> record id (a torn last line is ignored)."""
    attempted: set[int] = set()
    acked: dict[int, str] = {}
    if path.exists():
        for line in path.read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2 and parts[0] == "attempt" and parts[1].isdigit():
                attempted.add(int(parts[1]))
            elif len(parts) == 3 and parts[0] == "ack" and parts[1].isdigit() and len(parts[2]) == 66:
                acked[int(parts[1])] = parts[2]
    return attempted, acked


def _log(path: Path, lines: list[str]) -> None:
    with open(path, "a") as ledger:
        ledger.write("".join(f"{line}\n" for line in lines))
        ledger.flush()
        os.fsync(ledger.fileno())


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    chain = ChainClient(config["rpc"], Deployment.from_json(config["deployment"]), timeout=config["timeout"])
    identity = Identity.from_private_keys(config["wallet"], {1: bytes.fromhex(config["x25519"])})
    client = EHRClient(chain, LocalStore(config["store"]), identity, state_dir=Path(config["state"]))
    name, ledger, size = config["name"], Path(config["ledger"]), int(config["batch"])
    attempted, acked = read_ledger(ledger)
    if config["settle"]:
        todo = sorted(attempted - set(acked))
    else:
        start = min(set(range(max(attempted | {-1}) + 2)) - set(acked))
        todo = [n for n in range(start, start + 100_000) if n not in acked]
    try:
        while todo:
            chunk, todo = todo[:size], todo[size:]
            _log(ledger, [f"attempt {n}" for n in chunk])
            if size == 1:
                ids = [client.add_record(client.address, soak_record(name, chunk[0])).record_id]
            else:
                items = [BatchItem(client.address, soak_record(name, n)) for n in chunk]
                ids = list(BatchWriter(client, batch_size=size).write(items).record_ids)
            _log(ledger, [f"ack {n} 0x{r.hex()}" for n, r in zip(chunk, ids, strict=True)])
    except EHRError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
