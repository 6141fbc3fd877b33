"""A retry can only land as the same record (DESIGN: acknowledged means durable). The write's id comes
from a salt over the journal fingerprint, and the fingerprint is an HMAC under a key derived from the
writer's *current X25519 key*. A writer whose process died after its anchor was mined (not reported),
who then rotates its encryption key (`ehr keys rotate`, routine) and retries, anchors the same content
a second time under a new id: the patient's record is doubled."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.client import EHRClient
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.records import Scope
from tests.client.conftest import lab_result
from tests.constants import DAY

LAB = int(Scope.LAB)


def test_a_retry_after_an_encryption_key_rotation_lands_as_the_same_record(
        people: dict[str, EHRClient], client_for: Callable[..., EHRClient]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    result: dict[str, Any] = lab_result("red-team sodium", 140.0)
    first = lab.add_record(patient.address, result)  # mined; the process dies before it reports

    # `ehr keys rotate`: version 2 of the X25519 key, published; the wallet and state dir are the same.
    identity = dataclasses.replace(lab.identity, x25519={**lab.identity.x25519,
                                                         2: generate_x25519_keypair().private_key})
    rotated = EHRClient(lab.chain, lab.store, identity, state_dir=lab.state_dir)
    rotated.publish_key()

    retry = rotated.add_record(patient.address, result)

    assert retry.record_id == first.record_id and retry.tx is None
    same = [r for r in patient.list_records(patient.address) if r.author == lab.address]
    assert len(same) == 1


def test_an_import_run_again_after_a_key_rotation_anchors_nothing_twice(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    items = [BatchItem(patient.address, lab_result(f"red-team chloride {i}", 100.0 + i)) for i in range(3)]
    BatchWriter(lab).write(items)  # the import finished; its report was lost with the terminal
    identity = dataclasses.replace(lab.identity, x25519={**lab.identity.x25519,
                                                         2: generate_x25519_keypair().private_key})
    rotated = EHRClient(lab.chain, lab.store, identity, state_dir=lab.state_dir)
    rotated.publish_key()

    BatchWriter(rotated).write(items)  # the operator runs the same import again, as the docs say is safe

    assert len([r for r in patient.list_records(patient.address) if r.author == lab.address]) == len(items)
