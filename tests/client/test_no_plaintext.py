"""No health data in the clear: on chain (calldata, events), in the store, in the journal, in logs."""

import logging

from ehr_client.records import Scope
from tests.constants import DAY

NAME, MRN, NOTE = "Zebediah Quarrington", "MRN-99887766", "marker-diagnosis-kestrel"


def test_markers_never_appear_outside_the_ciphertext(people, store, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    patient, lab, doctor = people["patient"], people["lab"], people["doctor"]
    resource = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:hospital:mrn", "value": MRN}],
        "name": [{"text": NAME}],
    }
    condition = {
        "resourceType": "Condition",
        "code": {"text": NOTE},
        "subject": {"reference": "Patient/" + MRN},
        "note": [{"text": f"{NAME} {MRN}"}],
    }
    start = patient.chain.w3.eth.block_number
    first = patient.add_record(patient.address, resource)
    patient.grant(lab.address, int(Scope.CONDITIONS), access="amend", expires_at=patient.chain.now() + DAY)
    written = lab.add_record(patient.address, condition)
    share = patient.grant(doctor.address, int(Scope.CONDITIONS), expires_at=patient.chain.now() + DAY).key_share
    assert NOTE in doctor.read_record(written.record_id, key_share=share).data.decode()
    assert NAME in patient.read_record(first.record_id).data.decode()

    markers = [m.encode() for m in (NAME, MRN, NOTE)]
    markers += [m.encode("utf-16-le") for m in (NAME, MRN, NOTE)]
    w3 = patient.chain.w3
    seen = []
    for number in range(start, w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            seen.append(bytes(tx["input"]))
    logs = w3.eth.get_logs({"fromBlock": start, "toBlock": "latest"})
    assert logs, "the scenario emitted no events"
    seen += [bytes(log["data"]) + b"".join(bytes(t) for t in log["topics"]) for log in logs]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(store.root in p.parents for p in files)
    seen += [p.read_bytes() for p in files]
    seen.append("\n".join(r.getMessage() for r in caplog.records).encode())

    for blob in seen:
        for marker in markers:
            assert marker not in blob
            assert marker.hex().encode() not in blob
