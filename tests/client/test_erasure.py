"""Erasure leaves nothing the system holds able to open an erased record: key shares are re-issued
without its data key, versions amended in during the erasure are erased too (a version whose pointer
does not verify included), and a damaged journal stops it before anything changes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ehr_client.chain.ids import record_id_of
from ehr_client.chain.types import Status
from ehr_client.client import EHRClient
from ehr_client.errors import BlobNotFound, ErasureIncomplete, RecordErased, StorageUnavailable
from ehr_client.journal import JournalDamaged
from ehr_client.keyshare import KeyShare
from ehr_client.records import Scope, canonicalize
from ehr_client.sharing import audited
from ehr_client.sharing.audited import AuditedSharing
from ehr_client.sharing.remote import CustodianSet
from ehr_client.storage import Cid
from tests.constants import DAY

LAB = int(Scope.LAB)


def _other(observation: dict[str, Any], value: float) -> dict[str, Any]:
    return {**observation, "valueQuantity": {"value": value, "unit": "mmol/L"}}


def _sharing(client: EHRClient) -> AuditedSharing:
    return AuditedSharing(client, CustodianSet.connect(client.chain, []))


def test_erasure_reissues_the_grant_s_key_share_without_the_erased_record(people: dict[str, EHRClient],
                                                                           observation: dict[str, Any]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    erased = patient.add_record(patient.address, observation)
    kept = patient.add_record(patient.address, _other(observation, 6.1))
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    assert grant.key_share is not None and grant.shared_records == 2

    erasure = _sharing(patient).erase(erased.record_id)

    assert len(erasure.reissued_shares) == 1
    reissued = erasure.reissued_shares[0]
    assert (reissued.grantee, reissued.old, reissued.dropped) == (doctor.address, grant.key_share, 1)
    assert reissued.new is not None and not patient.store.has(grant.key_share)
    share = KeyShare.from_bytes(patient.store.get(reissued.new))
    assert [e.record_id for e in share.entries] == [kept.record_id] and share.grantee == doctor.address
    assert reissued.new in patient.journal.shares()  # gc keeps the new share
    assert doctor.read_record(kept.record_id, key_share=reissued.new).data == canonicalize(_other(observation, 6.1))
    with pytest.raises(RecordErased):
        doctor.read_record(erased.record_id, key_share=reissued.new)
    with pytest.raises(BlobNotFound):
        doctor.read_record(kept.record_id, key_share=grant.key_share)

    again = _sharing(patient).erase(erased.record_id)  # a rerun (say after a crash) changes nothing more

    assert again.reissued_shares == erasure.reissued_shares and again.tombstone_txs == ()  # told again
    assert doctor.read_record(kept.record_id, key_share=reissued.new).data == canonicalize(_other(observation, 6.1))


def test_erasure_of_the_only_shared_record_leaves_no_share(people: dict[str, EHRClient],
                                                           observation: dict[str, Any]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    written = patient.add_record(patient.address, observation)
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    assert grant.key_share is not None

    erasure = _sharing(patient).erase(written.record_id)

    assert [(r.old, r.new, r.dropped) for r in erasure.reissued_shares] == [(grant.key_share, None, 1)]
    assert not patient.store.has(grant.key_share)


def test_erasing_an_old_version_erases_its_later_versions(people: dict[str, EHRClient],
                                                          observation: dict[str, Any]) -> None:
    patient, hospital = people["patient"], people["hospital"]
    v1 = patient.add_record(patient.address, observation)
    patient.grant(hospital.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    v2 = hospital.amend_record(v1.record_id, _other(observation, 7.7))
    v3 = hospital.amend_record(v2.record_id, _other(observation, 8.8))

    erasure = _sharing(patient).erase(v1.record_id)

    assert set(erasure.record_ids) == {v1.record_id, v2.record_id, v3.record_id}
    assert erasure.successors == (v2.record_id, v3.record_id)
    assert all(patient.get_record(r.record_id).status == "tombstoned" for r in (v1, v2, v3))
    assert not any(patient.store.has(r.cid) for r in (v1, v2, v3))


def test_erasing_from_a_version_whose_pointer_is_not_a_cid_erases_it_and_the_ones_before(
        people: dict[str, EHRClient], observation: dict[str, Any]) -> None:
    patient, hospital = people["patient"], people["hospital"]
    v1 = patient.add_record(patient.address, observation)
    patient.grant(hospital.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    salt = os.urandom(32)  # the chain does not check pointers: the grantee anchors one that is not a CID
    hospital.chain.transact(hospital.identity.account, hospital.chain.records.functions.amendRecord(
        v1.record_id, salt, os.urandom(32), b"not a CID"), action="amend record")
    hidden = record_id_of(hospital.address, salt)

    erasure = _sharing(patient).erase(hidden)

    assert erasure.record_ids == (hidden, v1.record_id)
    assert [(s.what, s.author) for s in erasure.unverified] == [("record 0x" + hidden.hex(), hospital.address)]
    assert all(v.status == Status.TOMBSTONED for v in patient.versions_of(hidden))
    assert erasure.unpinned == (v1.cid,) and not patient.store.has(v1.cid)


def test_erasure_raced_on_every_round_stops_with_what_to_do_then_finishes_on_rerun(
        people: dict[str, EHRClient], observation: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    patient, hospital = people["patient"], people["hospital"]
    v1 = patient.add_record(patient.address, observation)
    patient.grant(hospital.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    monkeypatch.setattr(audited, "MAX_SUCCESSOR_ROUNDS", 2)
    landed = [v1.record_id]
    tombstone = patient.tombstone

    def amend_first(info: Any) -> Any:  # the attacker amends the latest version before every tombstone
        landed.append(hospital.amend_record(landed[-1], _other(observation, float(len(landed)))).record_id)
        return tombstone(info)

    monkeypatch.setattr(patient, "tombstone", amend_first)
    with pytest.raises(ErasureIncomplete) as raised:
        _sharing(patient).erase(v1.record_id)

    assert "0x" + landed[-1].hex() in str(raised.value) and hospital.address in str(raised.value)
    assert "ehr revoke" in str(raised.value)
    assert patient.get_record(landed[-1]).status == "active"
    assert all(patient.get_record(r).status == "tombstoned" for r in landed[:-1])  # what it did stays done

    monkeypatch.setattr(patient, "tombstone", tombstone)
    patient.revoke(hospital.address)
    erasure = _sharing(patient).erase(v1.record_id)

    assert set(erasure.record_ids) == set(landed)
    assert all(patient.get_record(r).status == "tombstoned" for r in landed)


def test_damaged_shares_log_stops_erasure_before_anything_changes(people: dict[str, EHRClient],
                                                                  observation: dict[str, Any]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    written = patient.add_record(patient.address, observation)
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    assert grant.key_share is not None
    log = patient.journal.shares_path
    log.write_bytes(log.read_bytes()[:-5] + b"XXXX\n")

    with pytest.raises(JournalDamaged, match="shares.log"):
        _sharing(patient).erase(written.record_id)

    assert patient.get_record(written.record_id).status == "active"
    assert patient.store.has(written.cid) and patient.store.has(Cid(grant.key_share))


def test_erasure_killed_before_the_old_share_is_unpinned_finishes_on_rerun(people: dict[str, EHRClient],
                                                                          observation: dict[str, Any],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    patient, doctor = people["patient"], people["doctor"]
    erased = patient.add_record(patient.address, observation)
    kept = patient.add_record(patient.address, _other(observation, 6.1))
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    assert grant.key_share is not None
    remove = patient.store.remove

    def dies_at_the_share(cid: Cid) -> None:  # the process dies after the new share is stored and journaled
        if cid == grant.key_share:
            raise StorageUnavailable("killed")
        remove(cid)

    monkeypatch.setattr(patient.store, "remove", dies_at_the_share)
    with pytest.raises(StorageUnavailable):
        _sharing(patient).erase(erased.record_id)
    monkeypatch.setattr(patient.store, "remove", remove)
    journaled = patient.journal.shares()
    assert patient.store.has(grant.key_share) and len(journaled) == 2  # both shares, nothing lost yet

    erasure = _sharing(patient).erase(erased.record_id)

    (reissued,) = erasure.reissued_shares
    assert reissued.new == journaled[-1]  # the rerun lands on the share the killed run stored
    assert not patient.store.has(grant.key_share) and patient.store.has(reissued.new)
    assert doctor.read_record(kept.record_id, key_share=reissued.new).data == canonicalize(_other(observation, 6.1))
