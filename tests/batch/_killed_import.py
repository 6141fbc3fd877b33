"""Run as a separate process by test_batch_resume: import a directory as the lab and SIGKILL itself
once `kill_after_stored` records are stored, or right after a named step of the first batch's
anchoring (`kill_after`: sealed, sent, mined, anchored, finished), as a crash or `kill -9` would."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from collections.abc import Callable
from typing import Any

from ehr_client.batch import BatchProgress, import_directory
from ehr_client.batch.journal import BatchJournal
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
        if p.stored >= config.get("kill_after_stored", 1 << 30):
            os.kill(os.getpid(), signal.SIGKILL)

    step = config.get("kill_after")
    if step is not None:
        journal_cls = BatchJournal
        targets = {"sealed": (journal_cls, "sealed"), "sent": (chain, "send_raw"),
                   "mined": (chain, "confirm"), "anchored": (journal_cls, "anchored"), "finished": (journal_cls, "finish")}
        owner, name = targets[step]
        original: Callable[..., Any] = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(owner, name, wrapped)

    import_directory(client, config["patient"], config["directory"], batch_size=config["batch_size"],
                     progress=progress)
    return 0  # the import finished before the kill point: the test fails on the exit code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
