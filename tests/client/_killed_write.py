"""Run as a separate process by test_kill_points: one single write as the lab, SIGKILLed right
after a named step, as a crash or `kill -9` would stop it there.

Steps: stored (the blob is in the store), journaled (the pending entry is on disk), sent (the
anchor transaction is with the node, no receipt yet), mined (the receipt is in), acknowledged (the
acknowledged log has it), done (the pending entry is gone, before the result is reported).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.client import EHRClient, Identity
from ehr_client.storage import LocalStore


def _die_after(obj: Any, name: str) -> None:
    original: Callable[..., Any] = getattr(obj, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(obj, name, wrapped)


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    chain = ChainClient(config["rpc"], Deployment.from_json(config["deployment"]))
    identity = Identity.from_private_keys(config["wallet"], {1: bytes.fromhex(config["x25519"])})
    client = EHRClient(chain, LocalStore(config["store"]), identity, state_dir=Path(config["state"]))
    step = config["step"]
    targets = {
        "stored": (client.store, "put"), "journaled": (client.journal, "put"),
        "sent": (chain, "send_raw"), "mined": (chain, "confirm"),
        "acknowledged": (client.journal, "acknowledge"), "done": (client.journal, "done"),
    }
    _die_after(*targets[step])
    client.add_record(config["patient"], config["resource"])
    return 0  # the write finished before the kill point: the test fails on the exit code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
