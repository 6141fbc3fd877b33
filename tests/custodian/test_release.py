"""Audited reads through three custodian processes (m = 2): success, failures of custodians, audit."""

import pytest

from ehr_client.custodian import CustodianUnavailable
from ehr_client.records import Scope, canonicalize
from tests.constants import DAY
from tests.custodian.conftest import custodian_address, fragments, releases

LAB = int(Scope.LAB)


def _share(env, record_id, grantee="doctor"):
    delegation = env.sharing("patient").grant(env.clients[grantee].address, LAB, expires_at=env.chain.now() + DAY)
    assert record_id in delegation.record_ids
    return delegation


def test_grantee_reads_record_released_by_two_of_three_custodians(env, running, fhir_record, observation):
    record_id = fhir_record()
    delegation = _share(env, record_id)
    assert len(delegation.custodians) == 3 and delegation.threshold == 2
    assert fragments(env, record_id) == [1, 1, 1]

    result = env.sharing("doctor").read_record(record_id)

    assert result.data == canonicalize(observation)
    assert sum(releases(env, record_id)) == 2  # asked in turn, stopped at the threshold


def test_read_survives_one_custodian_killed_but_not_two(env, running, fhir_record, observation):
    record_id = fhir_record()
    _share(env, record_id)
    doctor = env.sharing("doctor")
    down = [custodian_address(env, 0), custodian_address(env, 2)]
    running[0].kill()

    assert doctor.read_record(record_id).data == canonicalize(observation)
    assert releases(env, record_id)[1:] == [1, 1]

    running[2].kill()
    with pytest.raises(CustodianUnavailable, match="1 of the 2 custodians needed answered") as caught:
        doctor.read_record(record_id)
    assert all(address in str(caught.value) for address in down)
    assert isinstance(caught.value, ConnectionError)
    assert releases(env, record_id)[1:] == [2, 1]


def test_audit_shows_each_access_request_with_grantee_time_and_releasing_custodians(env, running, fhir_record):
    record_id = fhir_record()
    _share(env, record_id)
    doctor = env.sharing("doctor")
    doctor.read_record(record_id)
    doctor.read_record(record_id)

    report = [r for r in env.sharing("patient").access_report() if r.record_id == record_id]

    assert [r.reader for r in report] == [env.clients["doctor"].address] * 2
    assert all(r.timestamp > 0 and r.tx_hash.startswith("0x") for r in report)
    assert all(len(r.released_by) == 2 for r in report)
    assert len({r.tx_hash for r in report}) == 2
    chain_trail = [e for e in env.clients["patient"].audit_trail(env.clients["patient"].address)
                   if e.event == "AccessRequested" and e.record_id == record_id]
    assert [(e.actor, e.tx_hash) for e in chain_trail] == [(r.reader, r.tx_hash) for r in report]


def test_a_grant_over_more_records_than_one_request_holds_deposits_them_all(env, running, observation):
    """60 records' fragments are about 80 KiB per custodian, over the custodians' 64 KiB body limit:
    the client signs several deposits, and the grantee reads the last record."""
    patient = env.clients["patient"]
    record_ids = [patient.add_record(patient.address, {**observation, "id": f"bulk-{n}"}).record_id
                  for n in range(60)]
    delegation = _share(env, record_ids[-1])
    assert set(record_ids) <= set(delegation.record_ids) and len(delegation.custodians) == 3
    assert all(fragments(env, r) == [1, 1, 1] for r in record_ids)
    assert env.sharing("doctor").read_record(record_ids[-1]).data == canonicalize({**observation, "id": "bulk-59"})
