"""Gas per operation, from the receipts (`gasUsed`) of real transactions sent by the client.

Each figure names the path it took (`paths` in the result): who sent it and what state it changed,
since the same call costs more when it creates a storage slot than when it updates one.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench._records import observation
from bench._world import DAY, World
from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.chain.client import TxResult
from ehr_client.client import EHRClient, RecordInfo
from ehr_client.records import Scope

LAB = int(Scope.LAB)
ANCHOR_SIZES = (1, 16, 256)
REPEATS = 5


@dataclass
class GasResult:
    figures: dict[str, int] = field(default_factory=dict)
    anchor_per_record: dict[str, int] = field(default_factory=dict)
    anchor_total: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, gas: int, path: str) -> None:
        self.figures[key] = gas
        self.paths[key] = path


def _median(values: list[int]) -> int:
    return int(statistics.median(values))


def _gas(tx: TxResult | None) -> int:
    if tx is None:
        raise RuntimeError("the benchmark expected a transaction and the client sent none")
    return tx.gas_used


def measure(world: World) -> GasResult:
    result = GasResult()
    patient, lab = world.client("patient", "gas"), world.client("lab", "gas")
    doctor, hospital = world.client("doctor", "gas"), world.client("hospital", "gas")
    fresh, second = world.client("fresh_grantee", "gas"), world.client("second_grantee", "gas")

    result.add("register_patient", patient.register_patient().gas_used, "a new patient registers (one new slot)")
    for client in (patient, lab, doctor, fresh, second):
        client.publish_key()
    now = patient.chain.now

    result.add("grant", _gas(patient.grant(doctor.address, LAB, expires_at=now() + DAY, share_keys=False).tx),
               "patient grants read on LAB to a grantee it never granted before (new slot)")
    result.add("revoke", patient.revoke(doctor.address).gas_used, "patient revokes the direct grant above")
    patient.grant(lab.address, LAB, access="amend", expires_at=now() + DAY, share_keys=False)

    added = [lab.add_record(patient.address, observation(i)) for i in range(REPEATS)]
    result.add("add_record", _median([_gas(w.tx) for w in added]),
               f"lab with an amend grant adds a 1 KB FHIR record; median of {REPEATS}")
    own = [patient.add_record(patient.address, observation(100 + i)) for i in range(REPEATS)]
    result.add("add_record_by_patient", _median([_gas(w.tx) for w in own]),
               f"patient adds their own record; median of {REPEATS}")
    amended = [lab.amend_record(w.record_id, observation(200 + i)) for i, w in enumerate(added)]
    result.add("amend_record", _median([_gas(w.tx) for w in amended]),
               f"lab amends its own record (new version, old one superseded); median of {REPEATS}")

    t = now()
    signed = patient.sign_grant(fresh.address, LAB, expires_at=t + DAY, deadline=t + 600, share_keys=False)
    result.add("grant_by_signature", hospital.relay_grant(signed).gas_used,
               "hospital relays a patient-signed grant for a grantee never granted before (fresh slot)")
    signed = patient.sign_grant(second.address, LAB, expires_at=t + DAY, deadline=t + 600, share_keys=False)
    hospital.relay_grant(signed)
    result.add("revoke_after_signed_grant", patient.revoke(second.address).gas_used,
               "patient revokes a grant that was relayed by signature")
    t = now()
    signed = patient.sign_grant(second.address, LAB, expires_at=t + DAY, deadline=t + 600, share_keys=False)
    result.add("grant_by_signature_regrant", hospital.relay_grant(signed).gas_used,
               "hospital relays a signed grant for the same grantee again, after the revocation (slot reused)")

    patient.grant(doctor.address, LAB, expires_at=now() + DAY, share_keys=False)
    result.add("request_access", _median([_request(doctor, "requestAccess", w.record_id) for w in own]),
               f"a grantee's access request for a single record (the on-chain fact of a read); median of {REPEATS}")
    result.add("tombstone", _median([patient.tombstone(patient.get_record(w.record_id)).gas_used for w in own]),
               f"patient tombstones one of their single records (`tombstone`); median of {REPEATS}")

    batches: dict[int, list[RecordInfo]] = {}
    for size in ANCHOR_SIZES:
        summary = BatchWriter(lab, batch_size=size).write(
            BatchItem(patient.address, observation(1000 * size + i)) for i in range(size))
        gas = _gas(summary.batches[0].tx)
        result.anchor_total[str(size)] = gas
        result.anchor_per_record[str(size)] = round(gas / size)
        batches[size] = [lab.get_record(r.record_id) for r in summary.batches[0].records]
    result.paths["anchor_per_record"] = ("lab anchors one batch of N records of one patient with one anchorBatch "
                                         "(written by BatchWriter); gasUsed / N")

    for size, key in ((16, "request_batched_access"), (256, "request_batched_access_256")):
        infos = batches[size][:REPEATS]
        depth = len(infos[0].batch.proof) if infos[0].batch else 0
        result.add(key, _median([_request(doctor, "requestBatchedAccess", i.batch.as_arg() if i.batch else None)
                                 for i in infos]),
                   f"the same grantee's access request for a record anchored in a batch of {size} (proof of {depth} "
                   f"hashes, checked on chain); median of {REPEATS}")
    sixteen = batches[16]
    amended = [lab.amend_record(info.record_id, observation(300 + i)) for i, info in enumerate(sixteen[:REPEATS])]
    result.add("amend_batched_record", _median([_gas(w.tx) for w in amended]),
               f"lab amends a record it anchored in a batch of 16 (`amendBatchedRecord`: proof checked, the batched "
               f"record's state stored, the new version added); median of {REPEATS}")
    erased = [patient.tombstone(info).gas_used for info in sixteen[REPEATS:2 * REPEATS]]
    result.add("tombstone_batched_record", _median(erased),
               f"patient tombstones a record of a batch of 16 never stored on its own (`tombstoneBatchedRecord`); "
               f"median of {REPEATS}")
    return result


def _request(client: EHRClient, function: str, arg: object) -> int:
    if arg is None:
        raise RuntimeError("the benchmark expected a batched record and found a single one")
    fn = getattr(client.chain.consent.functions, function)(arg)
    return client.chain.transact(client.identity.account, fn, action="request access").gas_used
