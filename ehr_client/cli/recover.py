"""`ehr record recover`: anchor again what this wallet acknowledged and the chain lost."""

from __future__ import annotations

import typer

from ehr_client.batch.recover import recover as recover_writes
from ehr_client.batch.recovered import Recovered
from ehr_client.claims import ClaimRegistry, Claims
from ehr_client.client import EHRClient
from ehr_client.errors import EHRError
from ehr_client.cli._context import app_context
from ehr_client.cli._output import JsonFlag, err, hexid, out, print_json, tx_line

__all__ = ["recover"]


def recover(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Check every write this wallet acknowledged against the chain; re-anchor what it lost (same ids),
    then commit again the claims the chain lost with them (when the deployment has a claim registry).
    Grants, revocations and erasures it acknowledged as a patient and the chain lost are applied again
    (the last decision per grantee only)."""
    app_ = app_context(ctx)
    client = app_.client()
    results = recover_writes(client)
    results += _restore_claims(client)
    if json_:
        print_json([{"kind": r.kind, "id": hexid(r.ident), "outcome": r.outcome, "detail": r.detail or None,
                     "txHash": r.tx.tx_hash if r.tx else None} for r in results])
    else:
        for r in results:
            line = f"{r.kind} {hexid(r.ident)}: {r.outcome}"
            out().print(line + (f" ({tx_line(r.tx)})" if r.tx else "") + (f" - {r.detail}" if r.detail else ""))
        if not results:
            err().print("nothing acknowledged by this wallet in this home")
    lost = [r for r in results if r.outcome in ("blob missing", "refused", "waiting")]
    if lost:
        raise typer.Exit(4)


def _restore_claims(client: EHRClient) -> list[Recovered]:
    """A `claim` line per logged commitment the chain no longer holds: committed again, or not
    restored (the record is gone, or the patient revoked the author's grant since) and why."""
    address = client.chain.deployment.contracts.get("ClaimRegistry")
    if not address:
        return []
    claims = Claims(client, ClaimRegistry(client.chain, address))
    restored = []
    for record_id, salt in client.journal.claimed_records().items():
        if claims.registry.commitment_of(record_id) != 0:
            continue
        try:
            tx = claims.restore(record_id, salt)
        except EHRError as exc:
            restored.append(Recovered("claim", record_id, "not restored", str(exc)))
            continue
        restored.append(Recovered("claim", record_id, "committed again", tx=tx) if tx is not None else
                        Recovered("claim", record_id, "not restored", "the record is no longer active"))
    return restored
