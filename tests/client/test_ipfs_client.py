"""The client end to end on a real Kubo daemon, and what happens when the daemon is down."""

import pytest

from ehr_client.errors import StorageUnavailable
from ehr_client.records import canonicalize
from ehr_client.storage import IpfsStore

pytestmark = pytest.mark.kubo


def test_write_and_read_through_kubo(people, client_for, kubo, observation):
    with IpfsStore(kubo.api_url, timeout=10) as ipfs:
        patient = client_for("patient", blob_store=ipfs)
        written = patient.add_record(patient.address, observation)
        assert ipfs.has(written.cid)
        assert patient.read_record(written.record_id).data == canonicalize(observation)
        assert patient.verify_record(written.record_id).ok


def test_kubo_down_during_add_leaves_nothing_on_chain(people, client_for, start_kubo, observation):
    daemon = start_kubo()
    ipfs = IpfsStore(daemon.api_url, timeout=2, retries=1)
    patient = client_for("patient", blob_store=ipfs)
    daemon.stop()
    with pytest.raises(StorageUnavailable):
        patient.add_record(patient.address, observation)
    assert patient.list_records(patient.address) == []
    assert patient.journal.pending() == []
