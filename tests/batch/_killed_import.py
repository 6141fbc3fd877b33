"""Run as a separate process by test_batch_resume: import a directory as the lab and SIGKILL itself
once `kill_after_stored` records are stored, as a crash or `kill -9` would stop a real import."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from ehr_client.batch import BatchProgress, import_directory
from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.client import EHRClient, Identity
from ehr_client.storage import LocalStore


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    chain = ChainClient(config["rpc"], Deployment.from_json(config["deployment"]))
    identity = Identity.from_private_keys(config["wallet"], {1: bytes.fromhex(config["x25519"])})
    client = EHRClient(chain, LocalStore(config["store"]), identity, state_dir=Path(config["state"]))

    def progress(p: BatchProgress) -> None:
        if p.stored >= config["kill_after_stored"]:
            os.kill(os.getpid(), signal.SIGKILL)

    import_directory(client, config["patient"], config["directory"], batch_size=config["batch_size"],
                     progress=progress)
    return 0  # the import finished before the kill point: the test fails on the exit code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
