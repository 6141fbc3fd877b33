"""Stateful property test: random sequences of consent, membership, record and break-glass
operations on the real contracts (Anvil), checked after every step against a Python model.

Every step predicts, from the model, whether the call must succeed or which custom error it must
revert with, then checks the chain agrees. After every step the invariant compares every
`canRead`/`canAmend` the model knows (each patient x each account x several scopes), every stored
grant and nonce, every break-glass state and every record's status with the model; record
statuses may only move forward (Active -> Superseded -> Tombstoned). At the end of each example
the event log is compared with the model: every record version was announced exactly once with
the content it was written with, and no history was rewritten.

Each example starts from a clean chain (an Ape snapshot taken in `__init__`, restored in
`teardown`). Hypothesis runs derandomized with no example database, so CI runs the same examples
every time. EHR_STATEFUL_EXAMPLES / EHR_STATEFUL_STEPS raise the bounds for longer runs.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from web3.contract.contract import ContractFunction

from ehr_client.chain.ids import record_id_of
from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.chain.eip712 import Domain, grant_typed_data, revoke_typed_data, sign_typed_data
from tests.constants import ACTION, CONSENT_DOMAIN_NAME, DAY, PURPOSE
from tests.security.consent_model import (
    ALLOWED_TRANSITIONS,
    Access,
    ConsentModel,
    Record,
    RecordEvent,
    Role,
    Status,
)
from tests.security.exact_tx import ExactSender
from tests.security.suite import signer_of
from tests.security.view_batch import View, ViewBatch

EXAMPLES = int(os.environ.get("EHR_STATEFUL_EXAMPLES", "40"))
STEPS = int(os.environ.get("EHR_STATEFUL_STEPS", "50"))

LAB, CONDITIONS, MENTAL = 1 << 1, 1 << 3, 1 << 9
# Weighted towards valid terms: a few invalid ones (zero scopes, no access, past expiry) stay in.
GRANT_SCOPES = [LAB, LAB, CONDITIONS, MENTAL, LAB | CONDITIONS, LAB | CONDITIONS | MENTAL, LAB | MENTAL, 0]
ACCESSES = [Access.READ, Access.READ, Access.READ, Access.AMEND, Access.AMEND, Access.NONE]
READ_CHECKS = [LAB, CONDITIONS, MENTAL, LAB | CONDITIONS, LAB | CONDITIONS | MENTAL]
AMEND_CHECKS = [LAB, CONDITIONS | MENTAL]
TTLS = [1800, 3600, 3600, 2 * 3600, DAY, DAY, -3600]
TIME_STEPS = [1, 60, 899, 900, 901, 1800, 3600, DAY]
SELF = "the record's patient"
PURPOSE_TAG = keccak(text=PURPOSE)[:5]
CHANGES = ["scopes", "access", "purpose", "expires", "deadline", "grantee", "patient"]


@dataclass(frozen=True)
class SignedGrant:
    patient: str
    grantee: str
    scopes: int
    access: int
    expires_at: int
    nonce: int
    deadline: int
    signature: bytes


@dataclass(frozen=True)
class SignedRevoke:
    patient: str
    grantee: str
    nonce: int
    deadline: int
    signature: bytes


@dataclass
class Stats:
    examples: int = 0
    steps: int = 0
    invariant_checks: int = 0
    views_compared: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    used_signature_replays: int = 0
    altered_relays: int = 0


@dataclass
class Context:
    """What the machine drives: the client, Ape's chain (snapshots, time), signers by address."""

    client: ChainClient
    ape_chain: Any
    signers: dict[str, LocalAccount]
    patients: list[str]
    roles: dict[str, Role]
    outsiders: list[str]
    governors: list[LocalAccount]
    stats: Stats = field(default_factory=Stats)

    @property
    def everyone(self) -> list[str]:
        return [*self.patients, *self.roles, *self.outsiders]

    @property
    def providers(self) -> list[str]:
        return [a for a, r in self.roles.items() if r == Role.PROVIDER]


def build_machine(ctx: Context) -> type[RuleBasedStateMachine]:
    client, ape_chain = ctx.client, ctx.ape_chain
    consent, records, consortium = client.consent.functions, client.records.functions, client.consortium.functions
    domain = Domain(CONSENT_DOMAIN_NAME, client.chain_id, client.consent.address)
    sender_tx = ExactSender(client, ape_chain)
    views = ViewBatch(client.rpc_url)
    addresses = dict(client.deployment.contracts)
    everyone = st.sampled_from(ctx.everyone)
    patients = st.sampled_from(ctx.patients)
    members = st.sampled_from(list(ctx.roles))
    providers = st.sampled_from(ctx.providers)

    class ConsentMachine(RuleBasedStateMachine):
        record_ids = Bundle("record_ids")
        signed_grants = Bundle("signed_grants")
        signed_revokes = Bundle("signed_revokes")

        def __init__(self) -> None:
            super().__init__()
            self.snapshot = ape_chain.snapshot()
            self.start_block = client.w3.eth.block_number
            self.now = int(client.w3.eth.get_block("latest")["timestamp"])
            self.model = ConsentModel(roles=dict(ctx.roles), patients=set(ctx.patients))
            self.last_status: dict[bytes, Status] = {}
            self.counter = 0
            ctx.stats.examples += 1

        def teardown(self) -> None:
            try:
                self._check_history()
            finally:
                ape_chain.restore(self.snapshot)

        # --- plumbing --------------------------------------------------------------------------

        def _step(self, name: str) -> None:
            ctx.stats.steps += 1
            ctx.stats.rules[name] += 1

        def _send(self, sender: str, fn: ContractFunction, expected: str | None, what: str) -> TxResult | None:
            """Mine `fn` at time now+1 and check the outcome is the predicted one."""
            result, actual = sender_tx.send(ctx.signers[sender], fn, at=self.now + 1)
            self.now += 1
            assert actual == expected, \
                f"{what} at t={self.now}: expected {expected or 'success'}, got {actual or 'success'}"
            ctx.stats.outcomes[f"{what}: {actual or 'ok'}"] += 1
            return result

        def _granted_events(self, result: TxResult) -> int:
            return len(client.events_in(result, "ConsentManager", "AccessGranted"))

        def _new_id(self) -> bytes:
            self.counter += 1
            return hashlib.sha256(f"record-{self.counter}".encode()).digest()

        # --- consent ------------------------------------------------------------------------------

        @rule(patient=patients, grantee=everyone, scopes=st.sampled_from(GRANT_SCOPES),
              access=st.sampled_from(ACCESSES), ttl=st.sampled_from(TTLS))
        def grant(self, patient: str, grantee: str, scopes: int, access: Access, ttl: int) -> None:
            self._step("grant")
            ts = self.now + 1
            expires = ts + ttl
            expected = self.model.grant_error(patient, grantee, scopes, access, expires, ts)
            result = self._send(patient, consent.grant(grantee, scopes, int(access), expires, PURPOSE), expected, "grant")
            if result is not None:
                changed = self.model.apply_grant(patient, grantee, scopes, access, expires)
                assert self._granted_events(result) == int(changed), "AccessGranted must be emitted iff terms change"

        @rule(target=signed_grants, patient=patients, grantee=st.one_of(members, everyone),
              scopes=st.sampled_from(GRANT_SCOPES), access=st.sampled_from(ACCESSES), ttl=st.sampled_from(TTLS),
              relayer=everyone, deadline_in=st.sampled_from([600, 600, 600, 0, -1]),
              front_run=st.sampled_from([None, *CHANGES]))
        def sign_and_relay_grant(self, patient: str, grantee: str, scopes: int, access: Access, ttl: int,
                                 relayer: str, deadline_in: int, front_run: str | None) -> SignedGrant:
            self._step("sign+relay grant")
            signed = self._sign_grant(patient, grantee, scopes, access, ttl, deadline_in)
            if front_run is not None:
                # someone saw the signature first and submits it with one field changed
                self._relay_altered(signed, next(a for a in ctx.everyone if a != relayer), front_run)
            if self._relay(signed, relayer, "relay grant"):
                # the same signature, sent again at once by someone else: its nonce is used
                ctx.stats.used_signature_replays += 1
                self._relay(signed, next(a for a in ctx.everyone if a != relayer), "replay grant")
            return signed

        def _relay(self, s: SignedGrant, relayer: str, what: str) -> bool:
            ts = self.now + 1
            expected = self.model.signed_grant_error(s.patient, s.grantee, s.scopes, Access(s.access), s.expires_at,
                                                     s.nonce, s.deadline, ts, genuine=True)
            fn = consent.grantBySig(s.patient, s.grantee, s.scopes, s.access == Access.AMEND, PURPOSE, s.expires_at,
                                    s.deadline, s.signature)
            result = self._send(relayer, fn, expected, what)
            if result is None:
                return False
            changed = self.model.apply_grant(s.patient, s.grantee, s.scopes, Access(s.access), s.expires_at,
                                             signed_at=s.nonce)
            assert self._granted_events(result) == int(changed)
            return True

        @rule(s=signed_grants, relayer=everyone)
        def replay_signed_grant(self, s: SignedGrant, relayer: str) -> None:
            self._step("replay signed grant")
            if s.nonce < self.model.grant_of(s.patient, s.grantee).nonce:
                ctx.stats.used_signature_replays += 1
            self._relay(s, relayer, "replay grant")

        @rule(s=signed_grants, relayer=everyone, change=st.sampled_from(CHANGES))
        def relay_altered_grant(self, s: SignedGrant, relayer: str, change: str) -> None:
            """A relayer changes one field of a signed grant: it must never validate."""
            self._step("relay altered grant")
            self._relay_altered(s, relayer, change)

        def _relay_altered(self, s: SignedGrant, relayer: str, change: str) -> None:
            fields: dict[str, Any] = dict(patient=s.patient, grantee=s.grantee, scopes=s.scopes, access=s.access,
                                          expires_at=s.expires_at, deadline=s.deadline, purpose=PURPOSE)
            if change == "scopes":
                fields["scopes"] = s.scopes ^ MENTAL
            elif change == "access":
                fields["access"] = Access.AMEND if s.access != Access.AMEND else Access.READ
            elif change == "purpose":
                fields["purpose"] = "research"
            elif change == "expires":
                fields["expires_at"] = s.expires_at + DAY
            elif change == "deadline":
                fields["deadline"] = s.deadline + 1
            elif change == "grantee":
                fields["grantee"] = next(a for a in ctx.everyone if a not in (s.grantee, s.patient))
            else:
                fields["patient"] = next(p for p in ctx.patients if p != s.patient)
            ts = self.now + 1
            expected = self.model.signed_grant_error(
                fields["patient"], fields["grantee"], fields["scopes"], Access(fields["access"]),
                fields["expires_at"], s.nonce, fields["deadline"], ts, genuine=False)
            fn = consent.grantBySig(fields["patient"], fields["grantee"], fields["scopes"],
                                    fields["access"] == Access.AMEND, fields["purpose"], fields["expires_at"],
                                    fields["deadline"], s.signature)
            self._send(relayer, fn, expected, "relay altered grant")
            ctx.stats.altered_relays += 1

        def _grantee(self, data: st.DataObject, patient: str) -> str:
            """Mostly someone the patient has granted (so revocations succeed), sometimes anyone."""
            granted = [g for (p, g), grant in self.model.grants.items() if p == patient and grant.access]
            return data.draw(st.one_of(st.sampled_from(granted), everyone) if granted else everyone)

        @rule(patient=patients, signed=st.booleans(), relayer=everyone, data=st.data())
        def revoke(self, patient: str, signed: bool, relayer: str, data: st.DataObject) -> None:
            """The patient revokes directly, or signs a revocation that someone relays."""
            grantee = self._grantee(data, patient)
            if not signed:
                self._step("revoke")
                if self._send(patient, consent.revoke(grantee), self.model.revoke_error(patient, grantee), "revoke"):
                    self.model.apply_revoke(patient, grantee)
                return
            self._step("sign+relay revoke")
            self._relay_revoke(self._sign_revoke(patient, grantee), relayer)

        def _sign_revoke(self, patient: str, grantee: str, *, ahead: int = 0) -> SignedRevoke:
            ts = self.now + 1
            nonce = self.model.grant_of(patient, grantee).nonce + ahead
            message = revoke_typed_data(domain, patient=patient, grantee=grantee, nonce=nonce,
                                        signature_valid_until=ts + 600)
            return SignedRevoke(patient, grantee, nonce, ts + 600, sign_typed_data(ctx.signers[patient].key, message))

        def _relay_revoke(self, s: SignedRevoke, relayer: str) -> None:
            ts = self.now + 1
            expected = self.model.signed_revoke_error(s.patient, s.grantee, s.nonce, s.deadline, ts)
            relayed = consent.revokeBySig(s.patient, s.grantee, s.nonce, s.deadline, s.signature)
            if self._send(relayer, relayed, expected, "relay revoke"):
                self.model.apply_revoke(s.patient, s.grantee, signed_at=s.nonce)

        @rule(target=signed_revokes, patient=patients, data=st.data())
        def sign_revoke_for_later(self, patient: str, data: st.DataObject) -> SignedRevoke:
            """The patient signs a revocation and hands it out; it is relayed later, or never."""
            self._step("sign revoke")
            return self._sign_revoke(patient, self._grantee(data, patient))

        @rule(target=signed_revokes, patient=patients, data=st.data())
        def sign_revoke_on_a_lost_history(self, patient: str, data: st.DataObject) -> SignedRevoke:
            """A revocation signed at a nonce the chain reached on a history a node lost: ahead of the
            pair's nonce now, it is refused (a later decision may have reused that nonce)."""
            self._step("sign revoke ahead")
            return self._sign_revoke(patient, self._grantee(data, patient),
                                     ahead=data.draw(st.sampled_from([1, 2]), label="ahead"))

        @rule(s=signed_revokes, relayer=everyone)
        def relay_signed_revoke(self, s: SignedRevoke, relayer: str) -> None:
            """A revocation signed earlier, relayed now: whatever was relayed in between, it ends
            every grant signed at its nonce or earlier, and never a grant decided later."""
            self._step("relay signed revoke")
            self._relay_revoke(s, relayer)

        @rule(patient=patients, extension_first=st.booleans(), ttl=st.sampled_from(TTLS), data=st.data())
        def race_extension_and_revocation(self, patient: str, extension_first: bool, ttl: int,
                                          data: st.DataObject) -> None:
            """The patient signs an extension, then a revocation, at the same nonce; both leak and a
            relayer picks the order. The revocation must win either way (SECURITY.md, F-13.1)."""
            self._step("race extension and revocation")
            grantee = self._grantee(data, patient)
            extension = self._sign_grant(patient, grantee, LAB | CONDITIONS, Access.READ, ttl, 600)
            revocation = self._sign_revoke(patient, grantee)
            relayer = data.draw(everyone)
            if extension_first:
                self._relay(extension, relayer, "relay grant")
                self._relay_revoke(revocation, relayer)
            else:
                self._relay_revoke(revocation, relayer)
                self._relay(extension, relayer, "relay grant")
            terms_ok = self.model.grant_error(patient, grantee, LAB | CONDITIONS, Access.READ, self.now + ttl,
                                              self.now) is None
            assert not (terms_ok and self.model.grant_of(patient, grantee).access), "a revocation lost the race"

        @rule(patient=patients, data=st.data())
        def cancel_signatures(self, patient: str, data: st.DataObject) -> None:
            self._step("cancel signatures")
            grantee = self._grantee(data, patient)
            if self._send(patient, consent.cancelSignatures(grantee), None, "cancel signatures"):
                self.model.apply_cancel(patient, grantee)

        # --- time ---------------------------------------------------------------------------------

        def _advance_to(self, target: int) -> None:
            ape_chain.pending_timestamp = target
            ape_chain.mine()
            self.now = int(client.w3.eth.get_block("latest")["timestamp"])
            assert self.now == target

        @rule(to_boundary=st.booleans(), data=st.data())
        def advance_time(self, to_boundary: bool, data: st.DataObject) -> None:
            """Mine an empty block later by a fixed step, or at one second before, at, or after a grant
            expiry, a break-glass expiry or a break-glass confirmation deadline."""
            edges = {g.expires_at for g in self.model.grants.values() if g.expires_at}
            edges |= {b.expires_at for b in self.model.break_glass.values() if b.expires_at}
            edges |= {b.requested_at + 900 for b in self.model.break_glass.values() if b.requested_at}
            targets = sorted(t for edge in edges for t in (edge - 1, edge, edge + 1) if t > self.now)
            if to_boundary and targets:
                self._step("advance to boundary")
                self._advance_to(data.draw(st.sampled_from(targets)))
            else:
                self._step("advance time")
                self._advance_to(self.now + data.draw(st.sampled_from(TIME_STEPS)))

        # --- membership ---------------------------------------------------------------------------

        @rule(data=st.data())
        def change_membership(self, data: st.DataObject) -> None:
            """Suspend a member (one governor, at once), or reinstate one (M-of-N: propose, approve,
            execute): mostly a suspended member, sometimes an active one (refused at the proposal).

            One rule for both, so suspension does not pile up and starve the rules that need
            active members.
            """
            suspended = sorted(self.model.suspended)
            action = data.draw(st.sampled_from(["suspend", "reinstate", "reinstate", "reinstate any"]))
            if action == "reinstate" and suspended:
                self._step("reinstate")
                self._reinstate(data.draw(st.sampled_from(suspended)))
            elif action == "reinstate any":
                self._step("reinstate")
                self._reinstate(data.draw(members))
            else:
                self._step("suspend")
                member = data.draw(members)
                expected = "ConsortiumWrongMemberStatus" if member in self.model.suspended else None
                if self._send(ctx.governors[0].address, consortium.suspend(member), expected, "suspend"):
                    self.model.suspended.add(member)

        def _reinstate(self, member: str) -> None:
            expected = None if member in self.model.suspended else "ConsortiumWrongMemberStatus"
            first, second = ctx.governors[0].address, ctx.governors[1].address
            proposed = self._send(first, consortium.propose(ACTION["reinstate"], member, 0, DAY), expected, "propose")
            if proposed is None:
                return
            proposal = client.events_in(proposed, "Consortium", "ProposalCreated")[0]["proposalId"]
            self._send(second, consortium.approve(proposal), None, "approve")
            self._send(second, consortium.execute(proposal), None, "execute reinstate")
            self.model.suspended.discard(member)

        # --- records ------------------------------------------------------------------------------

        @initialize(target=signed_grants)
        def seed_consent(self) -> Any:
            """Every example starts with a direct grant and a relayed signed grant to work on."""
            (first, second), (doctor, hospital) = ctx.patients, ctx.providers[:2]
            expires = self.now + 1 + DAY
            self._send(first, consent.grant(doctor, LAB | CONDITIONS, int(Access.READ), expires, PURPOSE), None, "grant")
            self.model.apply_grant(first, doctor, LAB | CONDITIONS, Access.READ, expires)
            signed = self._sign_grant(second, hospital, MENTAL, Access.READ, DAY, 600)
            assert self._relay(signed, doctor, "relay grant")
            return signed

        def _sign_grant(self, patient: str, grantee: str, scopes: int, access: Access, ttl: int,
                        deadline_in: int) -> SignedGrant:
            ts = self.now + 1
            nonce = self.model.grant_of(patient, grantee).nonce
            access = Access.READ if access == Access.NONE else access  # a signed grant says read or amend
            message = grant_typed_data(domain, patient=patient, grantee=grantee, scopes=scopes,
                                       may_amend=access == Access.AMEND, purpose=PURPOSE, grant_ends_at=ts + ttl,
                                       nonce=nonce, signature_valid_until=ts + deadline_in)
            return SignedGrant(patient, grantee, scopes, int(access), ts + ttl, nonce, ts + deadline_in,
                               sign_typed_data(ctx.signers[patient].key, message))

        @initialize(target=record_ids)
        def seed_records(self) -> Any:
            """Every example starts with one record per patient, written by the patient."""
            return multiple(*(self._add(p, p, scope) for p, scope in zip(ctx.patients, [LAB, MENTAL], strict=True)))

        @rule(target=record_ids, patient=st.sampled_from([*ctx.patients, ctx.outsiders[0]]),
              author=st.one_of(st.just(SELF), everyone), scope=st.sampled_from([LAB, CONDITIONS, MENTAL]))
        def add_record(self, patient: str, author: str, scope: int) -> Any:
            self._step("add record")
            record_id = self._add(patient, patient if author == SELF else author, scope)
            return multiple() if record_id is None else record_id

        def _add(self, patient: str, author: str, scope: int) -> bytes | None:
            salt = self._new_id()
            record_id = record_id_of(author, salt)
            content = hashlib.sha256(record_id).digest()
            cid = b"\x01\x55\x12\x20" + content
            expected = self.model.add_error(patient, author, scope, self.now + 1)
            if self._send(author, records.addRecord(salt, patient, content, scope, cid), expected, "add record"):
                self.model.records[record_id] = _record(patient, scope)
                self.model.added.append(RecordEvent(record_id, patient, author, content, scope, bytes(32), cid))
                return record_id
            return None

        @rule(target=record_ids, previous=record_ids, author=everyone)
        def amend_record(self, previous: bytes, author: str) -> Any:
            self._step("amend record")
            salt = self._new_id()
            record_id = record_id_of(author, salt)
            content = hashlib.sha256(record_id).digest()
            cid = b"\x01\x55\x12\x20" + content
            expected = self.model.amend_error(previous, author, self.now + 1)
            if self._send(author, records.amendRecord(previous, salt, content, cid), expected, "amend record"):
                old = self.model.records[previous]
                old.status = Status.SUPERSEDED
                self.model.records[record_id] = _record(old.patient, old.scope)
                self.model.added.append(RecordEvent(record_id, old.patient, author, content, old.scope, previous, cid))
                return record_id
            return multiple()

        @rule(record_id=record_ids, caller=st.one_of(st.just(SELF), everyone))
        def tombstone(self, record_id: bytes, caller: str) -> None:
            self._step("tombstone")
            if caller == SELF:
                caller = self.model.records[record_id].patient
            expected = self.model.tombstone_error(record_id, caller)
            if self._send(caller, records.tombstone(record_id), expected, "tombstone"):
                self.model.records[record_id].status = Status.TOMBSTONED
                self.model.tombstoned.append(record_id)

        @rule(record_id=record_ids, reader=st.one_of(st.just(SELF), everyone))
        def request_access(self, record_id: bytes, reader: str) -> None:
            self._step("request access")
            if reader == SELF:
                reader = self.model.records[record_id].patient
            self._request_access(record_id, reader)

        def _request_access(self, record_id: bytes, reader: str) -> None:
            expected, emergency = self.model.access_outcome(record_id, reader, self.now + 1)
            result = self._send(reader, consent.requestAccess(record_id), expected, "request access")
            if result is not None:
                event = client.events_in(result, "ConsentManager", "AccessRequested")[0]
                assert (event["recordId"], event["reader"], event["emergency"]) == (record_id, reader, emergency)
                if emergency:
                    ctx.stats.outcomes["request access: ok under break-glass"] += 1

        # --- break-glass --------------------------------------------------------------------------

        @rule(patient=patients, requester=st.one_of(providers, everyone), reason=st.sampled_from([1, 2, 3, 0]),
              confirm_now=st.booleans(), data=st.data())
        def open_break_glass(self, patient: str, requester: str, reason: int, confirm_now: bool,
                             data: st.DataObject) -> None:
            """A provider asks for emergency access; half the time the other provider confirms at once."""
            self._step("open break-glass")
            expected = self.model.open_error(requester, reason)
            if self._send(requester, consent.openBreakGlass(patient, reason), expected, "open break-glass"):
                self.model.apply_open(patient, requester, reason, self.now)
                others = [p for p in ctx.providers if p != requester]
                if confirm_now and others:
                    self._confirm(patient, requester, others[0], data)

        @rule(data=st.data())
        def confirm_break_glass(self, data: st.DataObject) -> None:
            """A pending request, an opened one (pending or not) or any pair; the other provider or anyone."""
            self._step("confirm break-glass")
            opened = sorted(self.model.break_glass)
            pending = [k for k in opened if self.model.break_glass[k].expires_at == 0
                       and self.now + 1 <= self.model.break_glass[k].requested_at + 900]
            choices = [st.sampled_from(c) for c in (pending, opened) if c] + [st.tuples(patients, providers)]
            patient, requester = data.draw(st.one_of(*choices))
            others = [p for p in ctx.providers if p != requester]
            self._confirm(patient, requester, data.draw(st.one_of(st.sampled_from(others), everyone)), data)

        def _confirm(self, patient: str, requester: str, approver: str, data: st.DataObject) -> None:
            expected = self.model.confirm_error(patient, requester, approver, self.now + 1)
            if self._send(approver, consent.confirmBreakGlass(patient, requester), expected, "confirm break-glass"):
                self.model.apply_confirm(patient, requester, self.now)
                # the emergency read that break-glass exists for, right away
                open_records = sorted(r for r, rec in self.model.records.items()
                                      if rec.patient == patient and rec.status != Status.TOMBSTONED)
                if open_records:
                    self._request_access(data.draw(st.sampled_from(open_records)), requester)

        # --- invariants ---------------------------------------------------------------------------

        @invariant()
        def chain_agrees_with_model(self) -> None:
            """Every view the model can answer, compared in one batched round trip."""
            checks: list[tuple[str, Any, View]] = []
            m, now = self.model, self.now

            def check(name: str, expected: Any, contract: str, function: str, *args: Any) -> None:
                checks.append((f"{function}({name})", expected, View(contract, addresses[contract], function, args)))

            for p in ctx.patients:
                for r in ctx.everyone:
                    pair = f"{p[:8]},{r[:8]}"
                    for s in READ_CHECKS:
                        check(f"{pair},{s}", m.can_read(p, r, s, now), "ConsentManager", "canRead", p, r, s)
                    for s in AMEND_CHECKS:
                        check(f"{pair},{s}", m.can_amend(p, r, s, now), "ConsentManager", "canAmend", p, r, s)
                    g = m.grant_of(p, r)
                    tag = PURPOSE_TAG if g.access != Access.NONE else bytes(5)
                    check(pair, (g.scopes, g.expires_at, int(g.access), g.nonce, g.grant_nonce, tag), "ConsentManager",
                          "getGrant", p, r)
                for r in ctx.providers:
                    b = m.break_glass.get((p, r))
                    check(f"{p[:8]},{r[:8]}", (b.requested_at, b.expires_at, b.reason) if b else (0, 0, 0),
                          "ConsentManager", "getBreakGlass", p, r)
            for member in ctx.roles:
                check(member[:8], m.active(member), "Consortium", "isActiveMember", member)
            for record_id, record in m.records.items():
                check(record_id.hex()[:8], (record.patient, record.scope, int(record.status)),
                      "RecordRegistry", "getRecord", record_id)
            answers = views.call([v for _, _, v in checks])
            wrong = [f"{name}: chain {_plain(got)} model {want}"
                     for (name, want, _), got in zip(checks, answers, strict=True) if _plain(got) != want]
            assert not wrong, f"at t={now}: " + "; ".join(wrong[:10])
            for record_id, record in m.records.items():
                before = self.last_status.get(record_id, Status.NONE)
                assert before == record.status or (before, record.status) in ALLOWED_TRANSITIONS, \
                    f"record {record_id.hex()[:8]} went {before.name} -> {record.status.name}"
                self.last_status[record_id] = record.status
            ctx.stats.invariant_checks += 1
            ctx.stats.views_compared += len(checks)

        def _check_history(self) -> None:
            start = self.start_block + 1
            added = [
                RecordEvent(bytes(e.args["recordId"]), e.args["patient"], e.args["author"],
                            bytes(e.args["contentHash"]), int(e.args["scope"]), bytes(e.args["previousId"]),
                            bytes(e.args["cid"]))
                for e in client.get_events("RecordRegistry", "RecordAdded", from_block=start)
            ]
            assert added == self.model.added, "the RecordAdded history differs from what was written"
            assert len({a.record_id for a in added}) == len(added), "a record id was announced twice"
            tombstoned = [bytes(e.args["recordId"]) for e in client.get_events("RecordRegistry", "RecordTombstoned",
                                                                            from_block=start)]
            assert tombstoned == self.model.tombstoned
            granted = client.get_events("ConsentManager", "AccessGranted", from_block=start)
            assert len(granted) == self.model.granted_events

    return ConsentMachine


def _record(patient: str, scope: int) -> Record:
    return Record(patient, scope, Status.ACTIVE)


def _plain(value: Any) -> Any:
    """Decoded results as tuples with checksummed addresses, to compare with the model."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


@pytest.mark.slow
def test_consent_rules_hold_under_random_operation_sequences(
    suite_chain: ChainClient, chain: Any, governors: list[Any], hospital: Any, doctor: Any, lab: Any,
    insurer: Any, stranger: Any, patient: Any, other_patient: Any,
) -> None:
    people = [*governors, hospital, doctor, lab, insurer, stranger, patient, other_patient]
    ctx = Context(
        client=suite_chain,
        ape_chain=chain,
        signers={p.address: signer_of(p) for p in people},
        patients=[patient.address, other_patient.address],
        roles={hospital.address: Role.PROVIDER, doctor.address: Role.PROVIDER, lab.address: Role.LAB,
               insurer.address: Role.INSURER},
        outsiders=[stranger.address],
        governors=[signer_of(governors[0]), signer_of(governors[1])],
    )
    started = time.monotonic()
    run_state_machine_as_test(
        build_machine(ctx),
        settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS, derandomize=True, database=None,
                          deadline=None, suppress_health_check=list(HealthCheck)),
    )
    stats = ctx.stats
    print(f"\nstateful: {stats.examples} examples, {stats.steps} steps, {stats.invariant_checks} invariant checks, "
          f"{stats.views_compared} views compared, {stats.used_signature_replays} replays of used signatures, "
          f"{stats.altered_relays} relays with an altered field, "
          f"{time.monotonic() - started:.1f}s")
    print("  rules: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.rules.items())))
    print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items())))
    assert stats.steps >= EXAMPLES, "the machine ran fewer steps than examples"
    assert stats.used_signature_replays > 0, "no used signature was ever replayed"
    for must_succeed in ("grant: ok", "relay grant: ok", "relay revoke: ok", "revoke: ok", "add record: ok",
                         "amend record: ok", "tombstone: ok", "request access: ok", "confirm break-glass: ok",
                         "request access: ok under break-glass", "suspend: ok", "execute reinstate: ok"):
        assert stats.outcomes[must_succeed] > 0, f"no successful {must_succeed.split(':')[0]} was exercised"
