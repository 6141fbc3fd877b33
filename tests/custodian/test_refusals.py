"""Every custodian refuses on its own, against the chain, and releases nothing (checked in its SQLite log)."""

import secrets

import pytest

from ehr_client.custodian import CustodianRefused, KeyReleaseDenied
from ehr_client.sharing.remote import CustodianSet
from ehr_client.errors import AccessDenied
from ehr_client.records import Scope
from tests.constants import DAY
from tests.custodian.conftest import (
    custodian_address,
    fragments,
    key_request,
    post,
    releases,
    request_access,
    wait_until,
)

LAB = int(Scope.LAB)
ALL = range(3)


def _share(env, record_id, grantee="doctor", *, ttl=DAY):
    return env.sharing("patient").grant(env.clients[grantee].address, LAB, expires_at=env.chain.now() + ttl)


def _refusals(env, record_id, access_tx, grantee="doctor", **options):
    """Ask each custodian directly; return the reason each one gave (all must be 403s)."""
    reasons = []
    for i in ALL:
        response = post(env, i, "/v1/cfrags", key_request(env, i, grantee, record_id, access_tx, **options))
        assert response.status_code == 403, response.text
        reasons.append(response.json()["reason"])
    return reasons


def test_grantee_without_grant_gets_nothing(env, running, fhir_record):
    record_id = fhir_record()
    _share(env, record_id)
    access_tx = request_access(env, "doctor", record_id)

    with pytest.raises(AccessDenied):
        env.sharing("hospital").read_record(record_id)
    assert _refusals(env, record_id, access_tx, grantee="hospital") == ["no-grant"] * 3
    assert releases(env, record_id) == [0, 0, 0]


def test_grantee_with_expired_grant_gets_nothing(env, running, fhir_record, chain):
    record_id = fhir_record()
    _share(env, record_id, ttl=60)
    access_tx = request_access(env, "doctor", record_id)
    chain.pending_timestamp += 120
    chain.mine()

    assert set(_refusals(env, record_id, access_tx)) <= {"no-grant", "grant-expired"}
    with pytest.raises(AccessDenied):
        env.sharing("doctor").read_record(record_id)
    assert releases(env, record_id) == [0, 0, 0]


def test_revocation_bites_at_next_request_and_fragments_are_destroyed(env, running, fhir_record):
    record_id = fhir_record()
    _share(env, record_id)
    env.sharing("doctor").read_record(record_id)
    kept_tx = request_access(env, "doctor", record_id)  # an access request made while the grant was valid

    env.clients["patient"].revoke(env.clients["doctor"].address)

    assert _refusals(env, record_id, kept_tx) == ["no-grant"] * 3
    assert sum(releases(env, record_id)) == 2
    assert wait_until(lambda: fragments(env, record_id) == [0, 0, 0])
    for custodian in running:
        store = custodian.store()
        assert [d.cause for d in store.destructions(record_id=record_id)] == ["revocation"]
        store.close()


def test_grantee_without_on_chain_access_request_gets_nothing(env, running, fhir_record):
    record_id = fhir_record()
    delegation = _share(env, record_id)
    patients_own_request = request_access(env, "patient", record_id)

    assert _refusals(env, record_id, "0x" + secrets.token_hex(32)) == ["no-access-request"] * 3
    assert _refusals(env, record_id, delegation.tx.tx_hash) == ["no-access-request"] * 3
    assert _refusals(env, record_id, patients_own_request) == ["no-access-request"] * 3
    assert releases(env, record_id) == [0, 0, 0]


def test_stale_access_request_is_refused(env, running, fhir_record, chain):
    record_id = fhir_record()
    _share(env, record_id)
    access_tx = request_access(env, "doctor", record_id)
    chain.mine(25)

    assert _refusals(env, record_id, access_tx) == ["stale-access-request"] * 3
    assert releases(env, record_id) == [0, 0, 0]


def test_request_signed_by_another_wallet_is_refused(env, running, fhir_record):
    record_id = fhir_record()
    _share(env, record_id)
    access_tx = request_access(env, "doctor", record_id)

    assert _refusals(env, record_id, access_tx, signer=env.identities["stranger"]) == ["bad-signature"] * 3
    assert releases(env, record_id) == [0, 0, 0]


def test_signed_request_works_once_at_the_custodian_it_names(env, running, fhir_record):
    record_id = fhir_record()
    _share(env, record_id)
    access_tx = request_access(env, "doctor", record_id)
    body = key_request(env, 0, "doctor", record_id, access_tx)

    assert post(env, 0, "/v1/cfrags", body).status_code == 200
    assert post(env, 0, "/v1/cfrags", body).json()["reason"] == "replayed-request"
    assert post(env, 1, "/v1/cfrags", body).json()["reason"] == "wrong-custodian"
    fresh = key_request(env, 0, "doctor", record_id, access_tx)
    assert post(env, 0, "/v1/cfrags", fresh).json()["reason"] == "access-request-used"
    stale_clock = key_request(env, 1, "doctor", record_id, access_tx, issued_at=env.chain.now() - 3600)
    assert post(env, 1, "/v1/cfrags", stale_clock).json()["reason"] == "expired-request"
    assert releases(env, record_id) == [1, 0, 0]


def test_wrong_totp_opens_no_session_and_nothing_is_released(env, running, fhir_record):
    record_id = fhir_record()
    _share(env, record_id, grantee="insurer")
    device = env.devices["insurer"]
    insurer = env.sharing("insurer")

    def wrong(custodian):
        right = device.code(custodian)
        return f"{(int(right) + 1) % 1_000_000:06d}"

    with pytest.raises(KeyReleaseDenied) as caught:
        insurer.open_sessions(wrong)
    assert sorted(caught.value.refusals.values()) == ["mfa-failed"] * 3
    with pytest.raises(KeyReleaseDenied) as caught:
        insurer.read_record(record_id)
    assert sorted(caught.value.refusals.values()) == ["mfa-required"] * 3
    access_tx = request_access(env, "insurer", record_id)
    forged = "0x" + secrets.token_hex(32)
    assert _refusals(env, record_id, access_tx, grantee="insurer", session=forged) == ["mfa-required"] * 3
    assert releases(env, record_id) == [0, 0, 0]


def test_replayed_totp_code_is_refused_and_nothing_is_released(env, running, fhir_record):
    record_id = fhir_record()
    _share(env, record_id, grantee="lab")
    account = env.identities["lab"].account
    custodians = CustodianSet.connect(env.chain, env.urls)
    used = {}
    for client in custodians.clients:
        used[client.address] = env.devices["lab"].code(client.address)
        client.open_session(account, used[client.address])  # the lab's own login

    for client in custodians.clients:
        with pytest.raises(CustodianRefused) as caught:
            client.open_session(account, used[client.address])
        assert caught.value.reason == "mfa-replayed"
    access_tx = request_access(env, "lab", record_id)
    forged = "0x" + secrets.token_hex(32)
    assert _refusals(env, record_id, access_tx, grantee="lab", session=forged) == ["mfa-required"] * 3
    assert releases(env, record_id) == [0, 0, 0]


def test_enrolment_needs_membership_and_happens_once(env, running):
    custodians = CustodianSet.connect(env.chain, env.urls)
    client = custodians.clients[0]
    with pytest.raises(CustodianRefused) as caught:
        client.enroll(env.identities["stranger"].account)
    assert caught.value.reason == "not-a-member"
    with pytest.raises(CustodianRefused) as caught:
        client.enroll(env.identities["doctor"].account)
    assert caught.value.reason == "already-enrolled"
    assert custodian_address(env, 0) == client.address
