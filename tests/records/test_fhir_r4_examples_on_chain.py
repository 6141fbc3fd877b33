"""The official R4 examples stored through the client on a real chain (Ape's Anvil) and a real
LocalStore, read back and equal to the originals in FHIR semantics (decimal precision included)."""

from __future__ import annotations

import pytest

from ehr_client.client import EHRClient
from ehr_client.records import parse_json
from tests.client.conftest import client_for, ids, people, rpc_url, store, suite  # noqa: F401 - fixtures
from tests.records.test_fhir_r4_examples import FILES, _same_decimal_text


@pytest.mark.slow  # 206 writes and 206 reads with an access request each: ~50 s on 2 cores
def test_every_official_example_is_stored_and_read_back_unchanged(people: dict[str, EHRClient]) -> None:  # noqa: F811
    patient = people["patient"]
    written = [(path, patient.add_record(patient.address, path)) for path in FILES]

    for path, result in written:
        original = parse_json(path.read_bytes())
        again = parse_json(patient.read_record(result.record_id).data)
        assert again == original, path.name
        assert _same_decimal_text(again, original), path.name
    assert len({result.record_id for _, result in written}) == len(FILES)
