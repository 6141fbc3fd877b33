"""The audit index against a scripted history on Anvil: exact trails, resume, reorgs, failures."""

from __future__ import annotations

import dataclasses

import pytest

from ehr_client.audit import AuditIndex
from ehr_client.chain.client import ChainClient
from ehr_client.errors import ConfigError
from tests.constants import ACCESS_AMEND


def _history(script):
    """A patient's story touching every kind of event; returns the record ids."""
    s = script
    s.register()
    r1 = s.add_record()
    s.grant("lab", access=ACCESS_AMEND)
    r2 = s.add_record(author="lab")
    r3 = s.amend(r2, author="lab")
    s.grant("doctor")
    s.read("doctor", r1)
    s.read("doctor", r3)
    s.open_break_glass("hospital")
    s.confirm_break_glass("doctor", "hospital")
    s.read("hospital", r1)
    s.revoke("doctor")
    s.tombstone(r1)
    s.publish_key("patient")
    s.suspend("insurer")
    return r1, r2, r3


def _names(rows, script):
    by_address = {script.address(name): name for name in script.ids}
    return [(row.name, by_address.get(row.actor, row.actor)) for row in rows]


PATIENT_TRAIL = [
    ("PatientRegistered", "patient"), ("RecordAdded", "patient"), ("AccessGranted", "patient"),
    ("RecordAdded", "lab"), ("RecordAdded", "lab"), ("RecordAmended", "lab"), ("AccessGranted", "patient"),
    ("AccessRequested", "doctor"), ("AccessRequested", "doctor"), ("BreakGlassRequested", "hospital"),
    ("BreakGlassActivated", "doctor"), ("AccessRequested", "hospital"), ("AccessRevoked", "patient"),
    ("RecordTombstoned", "patient"),
]


def test_patient_trail_lists_exactly_what_happened_in_order(script, open_index, client_for):
    start = script.block()
    _history(script)
    index = open_index()
    report = index.sync()
    assert report.last_block == script.block()

    rows = index.trail(patient=script.address("patient"))
    assert _names(rows, script) == PATIENT_TRAIL
    assert all(row.block_number > start and row.tx_hash.startswith("0x") and row.timestamp > 0 for row in rows)
    assert [row.position for row in rows] == sorted(row.position for row in rows)
    emergency = [row for row in rows if row.name == "AccessRequested" and row.args["emergency"]]
    assert _names(emergency, script) == [("AccessRequested", "hospital")]

    # EHRClient.audit_trail (one query per event type) agrees on every fact it covers.
    legacy = client_for("patient").audit_trail(script.address("patient"))
    covered = {e.event for e in legacy}
    assert [(e.event, e.block_number, e.log_index, e.tx_hash) for e in legacy] == [
        (r.name, r.block_number, r.log_index, r.tx_hash) for r in rows if r.name in covered]


def test_record_and_member_trails_select_their_facts(script, open_index):
    r1, r2, r3 = _history(script)
    index = open_index()
    index.sync()

    assert _names(index.trail(record=r3), script) == [
        ("RecordAdded", "lab"), ("RecordAmended", "lab"), ("AccessRequested", "doctor")]
    assert _names(index.trail(record=r2), script) == [
        ("RecordAdded", "lab"), ("RecordAdded", "lab"), ("RecordAmended", "lab")]  # r2, and r3 amending it
    assert _names(index.trail(record=r1), script) == [
        ("RecordAdded", "patient"), ("AccessRequested", "doctor"), ("AccessRequested", "hospital"),
        ("RecordTombstoned", "patient")]
    assert _names(index.trail(actor=script.address("doctor")), script) == [
        ("AccessRequested", "doctor"), ("AccessRequested", "doctor"), ("BreakGlassActivated", "doctor")]
    involving_insurer = index.trail(member=script.address("insurer"))
    assert [row.name for row in involving_insurer][-1] == "MemberSuspended"
    assert involving_insurer[-1].actor == script.address("gov_a")
    keys = index.trail(actor=script.address("patient"), names=["KeyPublished"])
    assert len(keys) == 1 and keys[0].patient is None


def test_resume_indexes_the_rest_without_duplicates_or_gaps(script, open_index, suite):
    script.register()
    record = script.add_record()
    script.grant("doctor")
    script.read("doctor", record)
    middle = script.block()

    resumed = open_index("resumed", page_blocks=3)
    first = resumed.sync(to_block=middle)
    assert first.last_block == middle
    count_before = resumed.count()

    script.read("doctor", record)
    script.revoke("doctor")
    script.read("patient", record)
    second = resumed.sync()
    assert second.last_block == script.block()
    assert second.events == 3 and resumed.count() == count_before + 3
    assert resumed.sync().events == 0  # nothing new: nothing added

    fresh = open_index("fresh")
    fresh.sync()
    assert resumed.positions() == fresh.positions()
    assert len(set(resumed.positions())) == resumed.count()
    direct = suite.w3.eth.get_logs({"fromBlock": suite.deployment.deploy_block, "toBlock": script.block(),
                                    "address": list(suite.deployment.contracts.values())})
    assert resumed.count() == len(direct)

    reopened = AuditIndex.open(suite, resumed.path.parent)  # a new process picks up the stored cursor
    try:
        assert reopened.last_block == script.block() and reopened.sync().events == 0
    finally:
        reopened.close()


def test_reorganised_blocks_are_dropped_and_reindexed(script, open_index, suite):
    script.register()
    record = script.add_record()
    script.grant("doctor")
    snapshot = suite.w3.provider.make_request("evm_snapshot", [])["result"]
    script.read("doctor", record)
    script.read("doctor", record)
    index = open_index()
    index.sync()
    stale = [row.tx_hash for row in index.trail(names=["AccessRequested"])]
    assert len(stale) == 2

    suite.w3.provider.make_request("evm_revert", [snapshot])
    script.revoke("doctor")  # a different history at the same heights
    script.read("patient", record)
    script.read("patient", record)
    report = index.sync()

    assert report.rolled_back_to is not None
    rows = index.trail(patient=script.address("patient"))
    assert not {row.tx_hash for row in rows} & set(stale)
    assert [row.name for row in rows][-3:] == ["AccessRevoked", "AccessRequested", "AccessRequested"]
    fresh = open_index("fresh")
    fresh.sync()
    assert index.positions() == fresh.positions()


def test_reverted_attempts_are_found_from_receipts_with_their_error(script, open_index):
    script.register()
    record = script.add_record()
    start = script.block() + 1
    failed_read = script.failed_read("stranger", record)
    failed_grant = script.failed("patient", script.chain.consent.functions.revoke(script.address("doctor")))
    index = open_index()
    report = index.sync(transactions_from=start)
    assert report.transactions == 2 and index.transactions_range == (start, script.block())

    rows = index.trail(patient=script.address("patient"))
    failed = [row for row in rows if row.failed]
    assert [(row.tx_hash, row.name, row.error) for row in failed] == [
        (failed_read, "requestAccess", "ConsentUnauthorized"), (failed_grant, "revoke", "ConsentNoGrant")]
    assert failed[0].actor == script.address("stranger") and failed[0].record_id == "0x" + record.hex()
    assert index.trail(patient=script.address("patient"), include_failed=False) == [r for r in rows if not r.failed]


def test_index_of_another_deployment_is_refused(suite, open_index, tmp_path):
    open_index().close()
    other = dataclasses.replace(suite.deployment, deploy_block=suite.deployment.deploy_block + 1)
    with pytest.raises(ConfigError, match="another deployment"):
        AuditIndex.open(ChainClient(suite.rpc_url, other), tmp_path / "audit")
