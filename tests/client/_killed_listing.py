"""Run as a separate process by test_listing_cache: lists a patient's records (each listing saves the
patient's listing cursor), SIGKILLed at a named step of the cache's atomic write, as a crash would
stop it there: `fsync` (the temporary file written, not yet durable or renamed), `replace` (durable,
not yet renamed), or `loop` (listing again and again until the parent kills it at any moment).

    python -m tests.client._killed_listing RPC_URL DEPLOYMENT_JSON STATE_DIR PATIENT STEP
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.client import EHRClient, Identity
from ehr_client.client import anchor_cache
from ehr_client.storage import LocalStore


def _die_before(module: Any, name: str) -> None:
    def killed(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)

    replacement: Callable[..., Any] = killed
    setattr(module, name, replacement)


def main(rpc_url: str, deployment_json: str, state_dir: str, patient: str, step: str) -> None:
    chain = ChainClient(rpc_url, Deployment.from_json(Path(deployment_json).read_text(), source=deployment_json))
    client = EHRClient(chain, LocalStore(Path(state_dir) / "store"), Identity.generate(), state_dir=Path(state_dir),
                       listing_depth=2)
    if step in ("fsync", "replace"):
        _die_before(anchor_cache.os, step)
    print("ready", flush=True)
    while True:
        client.list_records(patient)


if __name__ == "__main__":
    main(*sys.argv[1:])
