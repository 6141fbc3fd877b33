"""Attacks on grants the chain now stores without asking whether the grantee is a member
(ConsentManager._grant): what such a grant opens, who pays for one, and what the patient is shown.
The client world of tests/client: real Anvil, the suite deployed through the client, real stores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import requests

from ehr_client.batch.redecide import redecide
from ehr_client.chain.client import ChainClient
from ehr_client.chain.eip712 import GrantMessage, grant_typed_data, sign_typed_data
from ehr_client.chain.types import Access
from ehr_client.client import EHRClient, Identity
from ehr_client.client.consent import SignedConsent
from ehr_client.errors import EHRError, InvalidGrantee
from ehr_client.portal.facts import AuditView
from ehr_client.records.purpose import DEFAULT_PURPOSE, parse_purpose

ALL_NAMED = 0xBFFF
DAY = 24 * 3600


def node(rpc_url: str, method: str, *params: Any) -> Any:
    answer = requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                           timeout=30).json()
    return answer["result"]


def suspend(suite: ChainClient, ids: dict[str, Identity], name: str) -> None:
    suite.transact(ids["gov_a"].account, suite.consortium.functions.suspend(ids[name].address), action="suspend")


def raw_grant(patient: EHRClient, grantee: str, scopes: int, access: Access) -> None:
    """The patient's own wallet sends `grant` straight to ConsentManager (any wallet can; no client check)."""
    chain = patient.chain
    fn = chain.consent.functions.grant(grantee, scopes, int(access), chain.now() + DAY, "treatment")
    chain.transact(patient.identity.account, fn, action="grant from a plain wallet")


def test_terms_stored_for_a_stranger_or_amend_terms_for_an_insurer_open_nothing_and_no_relayer_pays_for_one(
        people: dict[str, EHRClient], ids: dict[str, Identity], suite: ChainClient,
        observation: dict[str, Any]) -> None:
    patient, stranger, insurer, hospital = (people[n] for n in ("patient", "stranger", "insurer", "hospital"))
    record_id = patient.add_record(patient.address, observation).record_id
    scope = patient.get_record(record_id).scope
    raw_grant(patient, stranger.address, ALL_NAMED, Access.AMEND)
    raw_grant(patient, insurer.address, ALL_NAMED, Access.AMEND)
    consent, records = suite.consent.functions, suite.records.functions

    assert not suite.call(consent.canRead(patient.address, stranger.address, scope), action="can read")
    assert not suite.call(consent.canAmend(patient.address, stranger.address, scope), action="can amend")
    assert not suite.call(consent.canAmend(patient.address, insurer.address, scope), action="can amend")
    for writer in (stranger, insurer):
        with pytest.raises(EHRError):  # the chain refuses the write, whichever path reports it
            suite.transact(writer.identity.account, records.addRecord(os.urandom(32), patient.address, os.urandom(32),
                                                                     scope, b"\x01\x55\x12\x20" + os.urandom(32)),
                           action="write for the patient")
    with pytest.raises(EHRError):
        suite.transact(stranger.identity.account, consent.requestAccess(record_id), action="request access")
    assert patient.share_keys(stranger.address, ALL_NAMED) == (None, 0)

    # A grant signed in a plain wallet (the client refuses to prepare one), brought to a relayer.
    document = grant_typed_data(patient.consent_domain(), patient=patient.address, grantee=stranger.address,
                                scopes=ALL_NAMED, may_amend=False, purpose=parse_purpose(DEFAULT_PURPOSE).word,
                                grant_ends_at=suite.now() + DAY, nonce=0, signature_valid_until=suite.now() + 3600)
    signed = SignedConsent(document, sign_typed_data(patient.identity.account.key, document))
    balance = suite.w3.eth.get_balance(hospital.address)
    with pytest.raises(InvalidGrantee):
        hospital.relay_grant(signed)
    assert suite.w3.eth.get_balance(hospital.address) == balance


def says_it_opens_nothing(entry: dict[str, Any]) -> bool:
    """Whether a listed grant carries any sign that its grantee cannot act on it now."""
    member = entry.get("member", "not said")
    return entry.get("opensNothing") is True or member is None or (isinstance(member, dict) and bool(member.get("suspended")))


def test_the_grant_list_tells_the_patient_which_grants_open_nothing_now(
        people: dict[str, EHRClient], ids: dict[str, Identity], suite: ChainClient, tmp_path: Path) -> None:
    patient, stranger, doctor, lab, insurer = (people[n] for n in ("patient", "stranger", "doctor", "lab", "insurer"))
    raw_grant(patient, stranger.address, ALL_NAMED, Access.READ)
    raw_grant(patient, insurer.address, ALL_NAMED, Access.AMEND)
    patient.grant(doctor.address, ALL_NAMED, expires_at=suite.now() + DAY, share_keys=False)
    patient.grant(lab.address, ALL_NAMED, expires_at=suite.now() + DAY, share_keys=False)
    suspend(suite, ids, "doctor")

    listed = AuditView(patient, tmp_path / "portal-audit").grants(patient.address)["grants"]

    consent = suite.consent.functions
    misleading = [entry["grantee"] for entry in listed
                  if not suite.call(consent.canRead(patient.address, entry["grantee"], entry["scopes"]), action="read")
                  and not says_it_opens_nothing(entry)]
    amend_shown = [entry["grantee"] for entry in listed if entry["access"] == "amend"
                   and not suite.call(consent.canAmend(patient.address, entry["grantee"], entry["scopes"]), action="a")
                   and entry.get("mayAmend") is not False and (entry.get("member") or {}).get("mayAmend") is not False]
    assert lab.address in [entry["grantee"] for entry in listed]
    assert (misleading, amend_shown) == ([], []), "listed as in force though opening nothing, listed as amend though unable"


def test_recovering_a_lost_grant_to_a_since_suspended_member_is_refused_not_paid_for(
        people: dict[str, EHRClient], ids: dict[str, Identity], suite: ChainClient, rpc_url: str) -> None:
    patient, doctor = people["patient"], people["doctor"]
    before_grant = node(rpc_url, "evm_snapshot")
    patient.grant(doctor.address, ALL_NAMED, expires_at=suite.now() + DAY, share_keys=False)
    node(rpc_url, "evm_revert", before_grant)  # the node lost the block that held the grant
    suspend(suite, ids, "doctor")
    balance = suite.w3.eth.get_balance(patient.address)

    outcomes = [(r.kind, r.outcome, r.detail) for r in redecide(patient)]

    assert outcomes and outcomes[0][:2] == ("grant", "refused"), outcomes
    assert suite.w3.eth.get_balance(patient.address) == balance
    assert int(suite.call(suite.consent.functions.getGrant(patient.address, doctor.address), action="g")[2]) == 0


def test_the_typed_data_path_refuses_a_grant_that_would_open_nothing_like_the_other_paths(
        people: dict[str, EHRClient], suite: ChainClient) -> None:
    patient, stranger, insurer = people["patient"], people["stranger"], people["insurer"]
    now = suite.now()
    with pytest.raises(InvalidGrantee):
        patient.sign_grant(stranger.address, ALL_NAMED, expires_at=now + DAY, deadline=now + 3600, share_keys=False)

    refused = []
    for grantee, access in ((stranger.address, "read"), (insurer.address, "amend")):
        try:
            patient.grant_document(grantee, ALL_NAMED, access=access, expires_at=now + DAY, deadline=now + 3600)
        except InvalidGrantee:
            refused.append(grantee)
    assert refused == [stranger.address, insurer.address]


def reinstate(suite: ChainClient, ids: dict[str, Identity], name: str) -> None:
    consortium = suite.consortium.functions
    result = suite.transact(ids["gov_a"].account, consortium.propose(1, ids[name].address, 0, DAY), action="propose")
    proposal_id = suite.events_in(result, "Consortium", "ProposalCreated")[0]["proposalId"]
    suite.transact(ids["gov_b"].account, consortium.approve(proposal_id), action="approve")
    suite.transact(ids["gov_b"].account, consortium.execute(proposal_id), action="execute")


def test_a_suspended_grantee_cannot_bank_a_signed_grant_the_patients_tools_refused_to_relay(
        people: dict[str, EHRClient], ids: dict[str, Identity], suite: ChainClient, rpc_url: str,
        observation: dict[str, Any]) -> None:
    patient, doctor, hospital = people["patient"], people["doctor"], people["hospital"]
    record_id = patient.add_record(patient.address, observation).record_id
    now = suite.now()
    signed = patient.sign_grant(doctor.address, ALL_NAMED, expires_at=now + 30 * DAY, deadline=now + 3600,
                                share_keys=False)
    suspend(suite, ids, "doctor")  # say the doctor's key was reported stolen
    with pytest.raises(InvalidGrantee):
        hospital.relay_grant(signed)

    m = signed.message
    assert isinstance(m, GrantMessage)
    relay = suite.consent.functions.grantBySig(m.patient, m.grantee, m.scopes, m.may_amend, m.purpose,
                                               m.grant_ends_at, m.signature_valid_until, signed.signature)
    try:  # the suspended doctor relays it himself, paying his own gas
        suite.transact(doctor.identity.account, relay, action="relay while suspended")
    except EHRError:
        pass
    node(rpc_url, "evm_increaseTime", 2 * 3600)  # the signature's deadline passes
    node(rpc_url, "evm_mine")
    reinstate(suite, ids, "doctor")

    assert not suite.call(suite.consent.functions.canRead(patient.address, doctor.address, ALL_NAMED), action="r")
    with pytest.raises(EHRError):
        suite.transact(doctor.identity.account, suite.consent.functions.requestAccess(record_id), action="request")
