"""What `ehr record recover` found for one acknowledged write or decision."""

from __future__ import annotations

from dataclasses import dataclass

from ehr_client.chain.client import TxResult


@dataclass(frozen=True)
class Recovered:
    """What recovery found for one acknowledged write (`on chain`, `re-anchored`, `blob missing`, `refused`)
    or decision (`on chain`, `re-applied`, `expired`, `waiting`, `refused`)."""

    kind: str  # "record", "batch", "claim", "grant", "revoke" or "erasure"
    ident: bytes
    outcome: str
    detail: str = ""
    tx: TxResult | None = None
