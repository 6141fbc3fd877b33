"""EHRClient on a FragmentedStore over five Kubo daemons: records stay readable with two nodes down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import StorageUnavailable
from ehr_client.records import Scope, canonicalize
from tests.constants import DAY
from tests.fragments.conftest import KuboCluster

pytestmark = pytest.mark.kubo

LAB = int(Scope.LAB)


@pytest.fixture
def clients(cluster: KuboCluster, suite: ChainClient, ids: dict[str, Identity], tmp_path: Path
            ) -> dict[str, EHRClient]:
    store = cluster.fragmented()
    made = {name: EHRClient(suite, store, ids[name], state_dir=tmp_path / name) for name in ("patient", "lab", "doctor")}
    made["patient"].register_patient()
    for client in made.values():
        client.publish_key()
    return made


def test_record_on_fragments_reads_back_with_two_nodes_down(
    clients: dict[str, EHRClient], cluster: KuboCluster, observation: dict[str, Any]
) -> None:
    patient, lab, doctor = clients["patient"], clients["lab"], clients["doctor"]
    now = patient.chain.now()
    patient.grant(lab.address, LAB, access="amend", expires_at=now + DAY, share_keys=False)
    written = lab.add_record(patient.address, observation)
    grant = patient.grant(doctor.address, LAB, expires_at=now + DAY)
    store = cluster.fragmented()
    placed = [f.node for f in store.manifest(written.cid).fragments]

    cluster.stop(placed[0], placed[3])

    assert patient.read_record(written.record_id).data == canonicalize(observation)
    assert grant.key_share is not None  # itself a fragmented blob
    read = doctor.read_record(written.record_id, key_share=grant.key_share)
    assert read.resource()["code"]["coding"][0]["code"] == "2345-7"
    assert patient.verify_record(written.record_id).ok


def test_write_with_two_nodes_down_fails_and_anchors_nothing(
    clients: dict[str, EHRClient], cluster: KuboCluster, observation: dict[str, Any]
) -> None:
    patient, lab = clients["patient"], clients["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    anchored = len(patient.list_records(patient.address))
    cluster.stop("n0", "n4")
    with pytest.raises(StorageUnavailable, match="a write needs 5"):
        lab.add_record(patient.address, observation)
    assert len(patient.list_records(patient.address)) == anchored
