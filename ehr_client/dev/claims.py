"""A throwaway local claims setup for the demo, the tests and the benchmark (never for production).

One two-member ceremony per circuit version, run on first use under .build/zk/<circuit>/local-ceremony
and reused after; a damaged or outdated one is replaced. A consortium runs its own (`ehr claim setup`).
"""

from __future__ import annotations

import shutil

from ehr_client.claims import ClaimSetup, run_ceremony
from ehr_client.claims.toolchain import build_circuit
from ehr_client.errors import ZkToolError

LOCAL_MEMBERS = ("hospital-a", "lab-b")


def local_claim_setup() -> ClaimSetup:
    directory = build_circuit().directory / "local-ceremony"
    try:
        return ClaimSetup.load(directory)
    except ZkToolError:
        shutil.rmtree(directory, ignore_errors=True)
    run_ceremony(directory, LOCAL_MEMBERS)
    return ClaimSetup.load(directory)


def local_claim_setup_ready() -> bool:
    try:
        ClaimSetup.load(build_circuit().directory / "local-ceremony")
    except ZkToolError:
        return False
    return True
