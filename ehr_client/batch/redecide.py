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
from ehr_client.chain.calls import Call
from ehr_client.chain.client import TxResult
from ehr_client.chain.types import Access, Status
from ehr_client.client import EHRClient
from ehr_client.client.grantee import check_grantee
from ehr_client.chain.eip712 import GrantMessage
from ehr_client.client.consent import SignedConsent
from ehr_client.decisions import ERASE, GRANT, REVOKE, Decision
from ehr_client.errors import AlreadyRelayed, EHRError, RecordNotFound
from ehr_client.records.purpose import purpose_hash

REPLAY_MARGIN = 120
"""Seconds of validity a consent must have left to be relayed again while recovering a revocation:
the whole sequence must land before any signature in it expires."""


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
        args = (decision.subject, decision.scopes, decision.access, decision.expires_at, decision.purpose)
        gas = check_grantee(chain, decision.subject, amend=decision.access == Access.AMEND, action="grant access again",
                            estimate=(client.address, Call(chain.consent, "grant", args)))
        return chain.transact(client.identity.account, consent.grant(*args), action="grant access again", gas=gas)
    assert decision.kind == REVOKE, decision.kind  # Decision admits no other kind
    if decision.signed is not None:
        return _revocation_again(client, decision, (int(scopes), int(expires), int(access)), int(nonce))
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


def _revocation_again(client: EHRClient, decision: Decision, in_force: tuple[int, int, int],
                      chain_nonce: int) -> tuple[str, str] | TxResult:
    """A relayed revocation signed at nonce n. The pair past n: it, or a later decision, holds. At n:
    relay it again, but only over the terms it ended, or over no grant (it then voids the grants
    signed at n): after a rollback the chain hands nonces out again, and a grant the patient made
    since, at the same nonce, is hers to end. Behind n: the rollback also lost the consents relayed
    before it and took the nonce back, so the grants the patient signed before it verify again; the
    chain refuses a revocation ahead of the pair, so the consents this identity relayed from the
    pair's nonce up to n are relayed again in order, then the revocation, and the chain ends where it
    was. Nothing is sent unless every one of them can still be relayed (a grant relayed again
    without the revocation after it would be the opposite of the patient's decision); a nonce in
    between that this identity did not relay (the patient decided it herself) is `refused` too:
    only the patient can sign again."""
    signed_at = SignedConsent.from_json(decision.signed or "").message.nonce
    if chain_nonce > signed_at:
        return "on chain", "the pair's nonce is past this revocation: it, or a later decision, holds"
    sign_again = "; the patient signs a new revocation if she still wants the grant ended"
    if chain_nonce == signed_at:
        if in_force[2] != 0 and in_force != (decision.scopes, decision.expires_at, decision.access):
            return "refused", ("the grant in force is not the one this revocation ended (the patient decided again "
                               "after the rollback)" + sign_again)
        return _relay_again(client, decision)
    earlier = _relayed_from(client, decision, chain_nonce, signed_at)
    if earlier is None:
        return "refused", (f"the chain lost decisions before this revocation (nonce {chain_nonce} of {signed_at}) "
                           "that this relayer did not relay; nothing was relayed" + sign_again)
    sequence = [*earlier, SignedConsent.from_json(decision.signed or "")]
    soon = client.chain.now() + REPLAY_MARGIN
    late = [c for c in sequence if c.message.signature_valid_until <= soon
            or (isinstance(c.message, GrantMessage) and c.message.grant_ends_at <= soon)]
    if late:
        return "refused", (f"{len(late)} of the {len(sequence)} consents that must be relayed again in order (the "
                           "revocation last) can no longer be relayed; nothing was relayed" + sign_again)
    for sent, consent in enumerate(earlier):
        try:
            client.relay_grant(consent) if isinstance(consent.message, GrantMessage) else client.relay_revoke(consent)
        except AlreadyRelayed:
            continue
        except EHRError as exc:
            return "refused", (f"relaying again the consent at nonce {consent.message.nonce} failed ({exc}) after "
                               f"{sent} earlier one(s) were relayed" + sign_again)
    try:
        return _relay_again(client, decision)
    except EHRError as exc:
        return "refused", (f"the earlier consents were relayed again but the revocation failed ({exc}): a grant it "
                           "ended may be in force again" + sign_again)


def _relayed_from(client: EHRClient, decision: Decision, first: int, end: int) -> list[SignedConsent] | None:
    """The consents this identity relayed for the decision's pair at nonces first .. end - 1, in nonce
    order (the last logged one per nonce), or None if one of those nonces has none."""
    by_nonce: dict[int, SignedConsent] = {}
    for logged in client.decisions.decisions():
        if logged.signed is None or (logged.patient, logged.subject) != (decision.patient, decision.subject):
            continue
        consent = SignedConsent.from_json(logged.signed)
        if first <= consent.message.nonce < end:
            by_nonce[consent.message.nonce] = consent
    if len(by_nonce) != end - first:
        return None
    return [by_nonce[n] for n in range(first, end)]


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
