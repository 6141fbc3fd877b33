"""Acknowledged consent decisions and erasures are durable: a chain that rolls back (a dev node killed
before its next state dump; here `evm_snapshot`/`evm_revert` on Ape's Anvil) and loses them gets them
back from `recover`, the last decision per grantee only, once."""

from __future__ import annotations

import json

import pytest

from ehr_client.batch.recover import recover
from ehr_client.chain.types import Access
from ehr_client.client import EHRClient
from ehr_client.errors import StorageFull
from ehr_client.journal import JournalDamaged, append_counted, checked_line, length_path
from ehr_client.records import Scope
from tests.client.conftest import lab_result
from tests.constants import DAY
from tests.small_disk import no_growth_during

LAB, IMAGING = int(Scope.LAB), int(Scope.IMAGING)


def _snapshot(client: EHRClient) -> str:
    return str(client.chain.w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]


def _revert(client: EHRClient, saved: str) -> None:
    client.chain.w3.provider.make_request("evm_revert", [saved])  # type: ignore[arg-type]


def _grant_of(patient: EHRClient, grantee: str) -> tuple[int, int, int]:
    scopes, expires, access, *_ = patient.chain.call(patient.chain.consent.functions.getGrant(
        patient.address, grantee), action="read grant")
    return int(scopes), int(expires), int(access)


def _decisions(patient: EHRClient) -> list[tuple[str, str]]:
    return [(d.kind, d.subject) for d in patient.decisions.decisions()]


def test_a_lost_revocation_is_applied_again_once(people: dict[str, EHRClient]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    saved = _snapshot(patient)
    patient.revoke(doctor.address)
    assert _decisions(patient) == [("grant", doctor.address), ("revoke", doctor.address)]
    _revert(patient, saved)
    assert _grant_of(patient, doctor.address)[2] == int(Access.READ)  # the grant is back in force

    results = recover(patient)
    assert [(r.kind, r.ident, r.outcome) for r in results] == [
        ("revoke", bytes.fromhex(doctor.address[2:]), "re-applied")]
    assert results[0].tx is not None
    assert _grant_of(patient, doctor.address) == (0, 0, 0)

    head = patient.chain.head()
    again = recover(patient)  # idempotent: nothing sent, nothing logged
    assert [(r.kind, r.outcome) for r in again] == [("revoke", "on chain")] and again[0].tx is None
    assert patient.chain.head() == head
    assert _decisions(patient) == [("grant", doctor.address), ("revoke", doctor.address)]


def test_an_old_lost_revocation_never_revokes_a_newer_grant(people: dict[str, EHRClient]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    saved = _snapshot(patient)
    patient.revoke(doctor.address)
    terms = (LAB | IMAGING, patient.chain.now() + 60 * DAY)
    patient.grant(doctor.address, terms[0], expires_at=terms[1], share_keys=False)  # decided again, later
    _revert(patient, saved)  # both lost: the old terms are in force

    results = recover(patient)
    assert [(r.kind, r.outcome) for r in results] == [("grant", "re-applied")]
    assert _grant_of(patient, doctor.address) == (*terms, int(Access.READ))

    # the later grant survived, the revocation before it did not: still nothing revoked
    saved = _snapshot(patient)
    patient.revoke(doctor.address)
    _revert(patient, saved)
    patient.grant(doctor.address, LAB, expires_at=terms[1], share_keys=False)
    assert [(r.kind, r.outcome) for r in recover(patient)] == [("grant", "on chain")]
    assert _grant_of(patient, doctor.address) == (LAB, terms[1], int(Access.READ))


def test_a_lost_grant_is_granted_again_unless_it_has_ended(people: dict[str, EHRClient]) -> None:
    patient, doctor, lab = people["patient"], people["doctor"], people["lab"]
    saved = _snapshot(patient)
    long_ends, short_ends = patient.chain.now() + 30 * DAY, patient.chain.now() + DAY
    patient.grant(doctor.address, LAB, access="read", purpose="research", expires_at=long_ends, share_keys=False)
    patient.grant(lab.address, LAB, access="amend", expires_at=short_ends, share_keys=False)
    _revert(patient, saved)
    w3 = patient.chain.w3
    w3.provider.make_request("evm_increaseTime", [2 * DAY])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    results = {r.ident: r for r in recover(patient)}
    assert results[bytes.fromhex(doctor.address[2:])].outcome == "re-applied"
    assert results[bytes.fromhex(lab.address[2:])].outcome == "expired"
    assert _grant_of(patient, doctor.address) == (LAB, long_ends, int(Access.READ))
    assert _grant_of(patient, lab.address) == (0, 0, 0)
    can_read = patient.chain.consent.functions.canRead(patient.address, doctor.address, LAB)
    assert patient.chain.call(can_read, action="check") is True
    assert {r.outcome for r in recover(patient)} == {"on chain", "expired"}


def test_an_erasure_of_a_write_the_chain_also_lost_waits_for_its_author(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    saved = _snapshot(patient)
    written = lab.add_record(patient.address, lab_result("lost then erased", 4.2))
    patient.tombstone(patient.get_record(written.record_id))
    _revert(patient, saved)

    waiting = [r for r in recover(patient) if r.kind == "erasure"]
    assert [(r.ident, r.outcome) for r in waiting] == [(written.record_id, "waiting")]
    assert "ehr record recover" in waiting[0].detail
    assert [r.outcome for r in recover(lab)] == ["re-anchored"]  # the author's write comes back active
    assert [r.outcome for r in recover(patient) if r.kind == "erasure"] == ["re-applied"]
    assert patient.get_record(written.record_id).status == "tombstoned"
    assert [r.outcome for r in recover(patient) if r.kind == "erasure"] == ["on chain"]


def test_a_damaged_or_cut_decision_log_is_reported_and_nothing_is_applied(people: dict[str, EHRClient]) -> None:
    patient, doctor, insurer = people["patient"], people["doctor"], people["insurer"]
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    saved = _snapshot(patient)
    patient.revoke(doctor.address)
    patient.grant(insurer.address, LAB, expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    _revert(patient, saved)
    log = patient.decisions.path
    data = log.read_bytes()
    first_end = data.index(b"\n") + 1
    head = patient.chain.head()

    log.write_bytes(data[:first_end + 30])  # cut inside the second line: not a torn last append
    with pytest.raises(JournalDamaged, match=str(log)) as cut:
        recover(patient)
    assert f"mv {length_path(log)}" in str(cut.value)
    log.unlink()  # a deleted log is not an empty past either
    with pytest.raises(JournalDamaged, match="is missing"):
        recover(patient)
    flipped = bytearray(data)
    flipped[first_end + 10] ^= 0x01
    log.write_bytes(bytes(flipped))
    with pytest.raises(JournalDamaged, match="line 2"):
        recover(patient)
    assert patient.chain.head() == head  # nothing was applied on any of them
    assert _grant_of(patient, doctor.address)[2] == int(Access.READ)

    log.write_bytes(data + data[first_end:][:25])  # a torn last append (a crash mid-write) is no damage
    assert [r.outcome for r in recover(patient)] == ["re-applied", "re-applied"]
    assert _grant_of(patient, doctor.address) == (0, 0, 0)
    assert _grant_of(patient, insurer.address)[0] == LAB


def test_a_cut_acknowledged_log_can_be_accepted_as_it_is_by_moving_its_length_aside(
        people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    written = [lab.add_record(patient.address, lab_result(f"sodium {i}", 140 + i)).record_id for i in range(3)]
    log = lab.journal.acknowledged_path
    data = log.read_bytes()
    log.write_bytes(data[:data.index(b"\n") + 1])  # cut at a line boundary: two acknowledged lines gone
    with pytest.raises(JournalDamaged, match="cut short"):
        lab.journal.acknowledged()
    with pytest.raises(JournalDamaged, match="cut short"):  # an append would make the cut look normal
        lab.add_record(patient.address, lab_result("sodium 9", 149))
    assert log.read_bytes() == data[:data.index(b"\n") + 1]
    length_path(log).rename(length_path(log).with_name(log.name + ".length.damaged"))  # the way out it names
    assert [e.record_id for e in lab.journal.acknowledged()] == ["0x" + written[0].hex()]
    again = lab.add_record(patient.address, lab_result("sodium 9", 149))  # the next append counts the log again
    assert again.tx is None  # the write anchored before the refusal, reported and acknowledged once now
    counted = log.read_bytes()
    log.write_bytes(counted + b'{"cid":"bafk')  # a crash mid-append: a torn last line, not counted yet
    assert [e.record_id for e in lab.journal.acknowledged()] == ["0x" + written[0].hex(), "0x" + again.record_id.hex()]
    log.write_bytes(counted[:-5])  # the counted last line cut: that is damage, not a crash
    with pytest.raises(JournalDamaged, match="cut short"):
        lab.journal.acknowledged()


def test_a_lost_relayed_revocation_is_relayed_again_by_its_relayer_while_its_signature_is_valid(
        people: dict[str, EHRClient]) -> None:
    patient, doctor, hospital, insurer = people["patient"], people["doctor"], people["hospital"], people["insurer"]
    now = patient.chain.now()
    patient.grant(doctor.address, LAB, expires_at=now + 30 * DAY, share_keys=False)
    patient.grant(insurer.address, LAB, expires_at=now + 30 * DAY, share_keys=False)
    saved = _snapshot(patient)
    hospital.relay_revoke(patient.sign_revoke(doctor.address, deadline=now + 30 * DAY))
    hospital.relay_revoke(patient.sign_revoke(insurer.address, deadline=now + DAY))
    assert [(d.kind, d.patient, d.subject) for d in hospital.decisions.decisions()] == [
        ("revoke", patient.address, doctor.address), ("revoke", patient.address, insurer.address)]
    _revert(patient, saved)
    w3 = patient.chain.w3
    w3.provider.make_request("evm_increaseTime", [2 * DAY])  # type: ignore[arg-type]  # the second one's deadline passed
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    # the patient's own log holds her grants, still on chain: she cannot know the relayer's tx was lost
    assert {r.outcome for r in recover(patient)} == {"on chain"}
    results = {r.ident: r for r in recover(hospital)}
    assert results[bytes.fromhex(doctor.address[2:])].outcome == "re-applied"
    refused = results[bytes.fromhex(insurer.address[2:])]
    assert refused.outcome == "refused" and refused.tx is None
    assert _grant_of(patient, doctor.address) == (0, 0, 0)
    assert _grant_of(patient, insurer.address)[2] == int(Access.READ)  # not revoked: the patient must sign again

    head = patient.chain.head()
    assert [r.outcome for r in recover(hospital)] == ["refused", "on chain"]  # the re-relay is logged, mined
    assert patient.chain.head() == head


def test_a_decision_that_cannot_be_logged_is_a_typed_error_saying_it_is_done(
        people: dict[str, EHRClient], monkeypatch: pytest.MonkeyPatch) -> None:
    patient, doctor = people["patient"], people["doctor"]
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    log = patient.decisions.path
    before = log.read_bytes()
    no_growth_during(patient.decisions, "add", log, monkeypatch)  # the append fails with EFBIG, a full disk
    with pytest.raises(StorageFull, match="the revoke is done") as full:
        patient.revoke(doctor.address)
    assert "ehr audit" in str(full.value)
    assert _grant_of(patient, doctor.address) == (0, 0, 0)  # done on chain, said so
    assert log.read_bytes() == before and not list(log.parent.glob(f".{log.name}.length.*"))  # nothing half-written
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    assert _decisions(patient) == [("grant", doctor.address), ("grant", doctor.address)]
    assert [r.outcome for r in recover(patient)] == ["on chain"]


def test_a_logged_decision_of_an_unknown_kind_is_damage_not_a_revocation(people: dict[str, EHRClient]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    forged = json.dumps({"kind": "suspend", "patient": patient.address, "subject": doctor.address,
                         "tx_hash": "0x" + "00" * 32, "block": 1}).encode()
    append_counted(patient.decisions.path, checked_line(forged), then="retry")  # checksummed, counted: well formed
    head = patient.chain.head()
    with pytest.raises(JournalDamaged, match="line 2.*unknown decision 'suspend'"):
        recover(patient)
    assert patient.chain.head() == head and _grant_of(patient, doctor.address)[2] == int(Access.READ)


def test_an_older_signed_grant_relayed_again_never_undoes_a_lost_revocation(people: dict[str, EHRClient]) -> None:
    patient, doctor, hospital = people["patient"], people["doctor"], people["hospital"]
    saved = _snapshot(patient)
    now = patient.chain.now()
    signed = patient.sign_grant(doctor.address, LAB, expires_at=now + 30 * DAY, deadline=now + 30 * DAY,
                                share_keys=False)
    hospital.relay_grant(signed)  # the hospital's log keeps it
    patient.revoke(doctor.address)  # the patient's later decision
    _revert(patient, saved)  # both lost: no grant in force, the signed grant's nonce is current again

    results = recover(patient)  # the revocation has nothing to end, but it voids the older signature again
    assert [(r.kind, r.outcome) for r in results] == [("revoke", "re-applied")]
    refused = recover(hospital)
    assert [(r.kind, r.outcome) for r in refused] == [("grant", "refused")]
    assert _grant_of(patient, doctor.address) == (0, 0, 0)

    head = patient.chain.head()
    assert [(r.kind, r.outcome) for r in recover(patient)] == [("revoke", "on chain")]
    assert patient.chain.head() == head
