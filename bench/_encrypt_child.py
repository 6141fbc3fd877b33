"""Run by `bench.memory` as a separate process: one full `EHRClient.add_record` of a large file.

Prints one JSON line (the record id, and this process's resident and peak memory just before the
write: the interpreter, web3, the FHIR models and the client, loaded), then waits for its stdin to
close, so that the parent can read the peak of the whole run from /proc before the process ends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.client import EHRClient, Identity
from ehr_client.storage import LocalStore


def memory_kib(status: Path) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak since exec) from a /proc/<pid>/status file, in KiB."""
    fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    chain = ChainClient(config["rpc"], Deployment.from_json(config["deployment"]), timeout=120)
    identity = Identity.from_private_keys(config["wallet"], {1: bytes.fromhex(config["x25519"])})
    client = EHRClient(chain, LocalStore(config["store"]), identity, state_dir=Path(config["state"]))
    before = memory_kib(Path("/proc/self/status"))
    written = client.add_record(client.address, Path(config["file"]), category="genomic")
    print(json.dumps({"recordId": "0x" + written.record_id.hex(), "beforeWrite": before}), flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
