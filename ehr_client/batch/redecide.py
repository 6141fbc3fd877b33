"""Applying again the consent decisions and erasures a chain lost (see `ehr_client.decisions`).

Per grantee only the patient's LAST logged decision counts: an older one is never applied over a
newer one (a grant after a revocation stays granted). A decision whose transaction the chain still
has, or whose effect the chain already shows, is left alone, so running this twice changes nothing.
An erasure is applied again only to a record version still active or superseded; a record the chain
does not hold yet (its author's write was lost too) waits for the author's `ehr record recover`.
A consent this identity relayed for a patient is relayed again from its signed document.
"""

from __future__ import annotations

from web3.exceptions import TransactionNotFound

from ehr_client.batch.recovered import Recovered
from ehr_client.chain.client import TxResult
from ehr_client.chain.types import Status
from ehr_client.client import EHRClient
from ehr_client.client.consent import SignedConsent
from ehr_client.decisions import ERASE, GRANT, REVOKE, Decision
from ehr_client.errors import AlreadyRelayed, EHRError, RecordNotFound
from ehr_client.records.purpose import purpose_hash


def _mined(client: EHRClient, tx_hash: str) -> bool:
    try:
        receipt = client.chain.rpc(lambda: client.chain.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
    except TransactionNotFound:
        return False
    return int(receipt["status"]) == 1


def _last_decisions(client: EHRClient) -> list[Decision]:
    """The last consent decision per (patient, grantee), this identity's own or relayed by it, and
    every erasure, in log order of their last line."""
    last: dict[tuple[str, str], Decision] = {}
    for decision in client.decisions.decisions():
        if decision.signed is None and decision.patient != client.address:
            continue
        key = (ERASE, decision.subject) if decision.kind == ERASE else (decision.patient, decision.subject)
        last.pop(key, None)
        last[key] = decision
    return list(last.values())


def redecide(client: EHRClient) -> list[Recovered]:
    """One `Recovered` per last decision: `on chain`, `re-applied`, `expired` (a lost grant whose end
    has passed is not granted again), `waiting` (an erasure of a record the chain does not hold yet)
    or `refused` (the chain refused it again; the detail says why)."""
    out = []
    for decision in _last_decisions(client):
        kind = "erasure" if decision.kind == ERASE else decision.kind
        ident = bytes.fromhex(decision.subject[2:])
        if _mined(client, decision.tx_hash):
            out.append(Recovered(kind, ident, "on chain"))
            continue
        try:
            outcome = _erase_again(client, decision) if decision.kind == ERASE else _consent_again(client, decision)
        except EHRError as exc:
            out.append(Recovered(kind, ident, "refused", str(exc)))
            continue
        out.append(Recovered(kind, ident, *outcome) if isinstance(outcome, tuple) else
                   Recovered(kind, ident, "re-applied", tx=outcome))
    return out


def _consent_again(client: EHRClient, decision: Decision) -> tuple[str, str] | TxResult:
    chain, consent = client.chain, client.chain.consent.functions
    scopes, expires, access, nonce, _, tag = chain.call(consent.getGrant(decision.patient, decision.subject),
                                                        action="read grant")
    if decision.kind == GRANT:
        if (scopes, expires, access, bytes(tag)) == (decision.scopes, decision.expires_at, decision.access,
                                                     purpose_hash(decision.purpose)[:5]):
            return "on chain", "the chain holds these terms"
        if decision.expires_at <= chain.now():
            return "expired", "the lost grant has ended since; grant again if access is still wanted"
        if decision.signed is not None:
            return _relay_again(client, decision)
        fn = consent.grant(decision.subject, decision.scopes, decision.access, decision.expires_at, decision.purpose)
        return chain.transact(client.identity.account, fn, action="grant access again")
    assert decision.kind == REVOKE, decision.kind  # Decision admits no other kind
    if decision.signed is not None:
        # With no grant in force the revocation still matters if the pair's nonce has not passed it:
        # the rollback took the nonce back too, so grants the patient signed before it verify again
        # until it is relayed (the chain honours a revocation signed ahead of the pair's nonce).
        signed_at = SignedConsent.from_json(decision.signed).message.nonce
        if access == 0 and nonce > signed_at:
            return "on chain", "no grant is in force and the signatures it voided stay void"
        return _relay_again(client, decision)
    if access == 0:
        return _void_signatures(client, decision)
    return chain.transact(client.identity.account, consent.revoke(decision.subject), action="revoke access again")


def _void_signatures(client: EHRClient, decision: Decision) -> TxResult:
    """A lost revocation also moved the pair's nonce on, voiding every consent the patient had signed
    for the grantee; with no grant in force that is all that is left to restore, or a relayer's
    `recover` could relay such an older signed grant over it. The patient signs a revocation at
    the current nonce and relays it herself (the chain admits it without a grant); it is logged, so
    the next recover finds it mined."""
    deadline = client.chain.now() + 3600
    return client.relay_revoke(client.sign_revoke(decision.subject, deadline=deadline))


def _relay_again(client: EHRClient, decision: Decision) -> tuple[str, str] | TxResult:
    """Relay the patient's signed consent again (logged again, with the new tx); a signature past its
    validity, or a nonce a later decision used, is `ConsentRefused`: the patient must sign again."""
    signed = SignedConsent.from_json(decision.signed or "")
    try:
        if decision.kind == GRANT:
            return client.relay_grant(signed)
        assert decision.kind == REVOKE, decision.kind
        return client.relay_revoke(signed)
    except AlreadyRelayed as exc:
        return "on chain", str(exc)


def _erase_again(client: EHRClient, decision: Decision) -> tuple[str, str] | TxResult:
    records = client.chain.records.functions
    try:
        info = client.get_record(bytes.fromhex(decision.subject[2:]))
    except RecordNotFound:
        return "waiting", ("the chain does not hold this record: its author's `ehr record recover` anchors it "
                           "again; then run `ehr record recover` again to erase it")
    if info.status == "tombstoned":
        return "on chain", "tombstoned"
    stored = int(client.chain.call(records.recordStatus(info.record_id), action="look up record")) != Status.NONE
    fn = records.tombstone(info.record_id) if info.batch is None or stored else \
        records.tombstoneBatchedRecord(info.batch.as_arg())
    return client.chain.transact(client.identity.account, fn, action="erase record again")
