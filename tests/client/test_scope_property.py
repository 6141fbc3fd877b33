"""Property: whatever members write, batch or forge, a key share never seals a data key of a scope
the grant lacks, and every record the grant covers is shared (real Anvil, real store)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.batch.journal import ANCHORED_NAME, BATCHES_NAME
from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.client.keysource import check_header, open_sealed
from ehr_client.client.manifest import BatchLeaf, build_manifest
from ehr_client.crypto import iter_decrypt
from ehr_client.errors import AccessDenied
from ehr_client.keyshare import KeyShare
from ehr_client.package import parse_header
from ehr_client.records import Scope
from ehr_client.storage import cid_to_bytes
from tests.constants import DAY

LAB, CONDITIONS, MENTAL = int(Scope.LAB), int(Scope.CONDITIONS), int(Scope.MENTAL_HEALTH)
AUTHOR_SCOPES = {"lab": LAB, "hospital": CONDITIONS | MENTAL, "patient": LAB | CONDITIONS | MENTAL}

write_op = st.tuples(st.just("write"), st.sampled_from(sorted(AUTHOR_SCOPES)), st.sampled_from([LAB, CONDITIONS, MENTAL]),
                     st.integers(min_value=0, max_value=3))  # 0: single write, k: a batch of k
forge_op = st.tuples(st.just("forge"), st.sampled_from(["lab", "hospital"]), st.integers(min_value=0, max_value=20),
                     st.sampled_from([LAB, CONDITIONS, MENTAL]))
junk_op = st.tuples(st.just("junk"), st.sampled_from(["lab", "hospital"]), st.just(0), st.just(0))
operations = st.lists(st.one_of(write_op, forge_op, junk_op), min_size=1, max_size=7)
granted = st.sampled_from([LAB, CONDITIONS, MENTAL, LAB | MENTAL, CONDITIONS | MENTAL])


def _resource(scope: int, n: int) -> dict[str, Any]:
    if scope == LAB:
        return {"resourceType": "Observation", "status": "final", "code": {"text": f"glucose {n}"},
                "valueQuantity": {"value": 5 + n / 10, "unit": "mmol/L"}}
    return {"resourceType": "Condition", "code": {"text": f"condition {n}"},
            "subject": {"reference": "Patient/example"}}


def _fresh_patient(suite: ChainClient, store: Any, tmp_path: Any, people: dict[str, EHRClient]) -> EHRClient:
    identity = Identity.generate()
    suite.w3.provider.make_request("anvil_setBalance", [identity.address, hex(10**20)])  # type: ignore[attr-defined]
    patient = EHRClient(suite, store, identity, state_dir=tmp_path / identity.address)
    patient.register_patient()
    patient.publish_key()
    for name in ("lab", "hospital"):
        patient.grant(people[name].address, AUTHOR_SCOPES[name], access="amend",
                      expires_at=suite.now() + DAY, share_keys=False)
    return patient


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(ops=operations, scopes=granted)
def test_no_key_share_ever_holds_a_key_of_a_scope_the_grant_lacks(
    ops: list[tuple[Any, ...]], scopes: int, people: dict[str, EHRClient], suite: ChainClient, store: Any,
    tmp_path_factory: Any,
) -> None:
    tmp_path = tmp_path_factory.mktemp("property")
    patient = _fresh_patient(suite, store, tmp_path, people)
    writers = {"lab": people["lab"], "hospital": people["hospital"], "patient": patient}
    for name in ("lab", "hospital"):
        # Their forged batches go on chain by raw calls, beside their batch writer: as for a wallet used
        # from another tool or home, the writer refuses unlogged batches until its logs are started.
        logs = Path(people[name].state_dir) / "batch"
        logs.mkdir(parents=True, exist_ok=True)
        for log_name in (ANCHORED_NAME, BATCHES_NAME):
            (logs / log_name).touch()
    written: list[tuple[bytes, int]] = []  # (record id, true scope) of every honest record
    counter = iter(range(10_000))
    for kind, who, arg, extra in ops:
        if kind == "write":
            scope = arg if arg & AUTHOR_SCOPES[who] else AUTHOR_SCOPES[who] & -AUTHOR_SCOPES[who]
            author = writers[who]
            if extra == 0:
                result = author.add_record(patient.address, _resource(scope, next(counter)), scope=scope)
                written.append((result.record_id, scope))
            else:
                items = [BatchItem(patient.address, _resource(scope, next(counter)), scope=scope) for _ in range(extra)]
                summary = BatchWriter(author, batch_size=4).write(items)
                written += [(r, scope) for r in summary.record_ids]
        elif kind == "forge" and written:
            # another member re-lists an honest record's blob under a scope it may write
            record_id, _ = written[arg % len(written)]
            victim = patient.get_record(record_id)
            forger = writers[who]
            scope = extra if extra & AUTHOR_SCOPES[who] else AUTHOR_SCOPES[who] & -AUTHOR_SCOPES[who]
            key = os.urandom(32)
            manifest = build_manifest(forger.address, patient.address, key,
                                      [BatchLeaf(scope, victim.content_hash, victim.cid)])
            data = manifest.to_bytes()
            cid = forger.store.put(data)
            suite.transact(forger.identity.account, suite.records.functions.anchorBatch(
                key, patient.address, scope, manifest.root, 1, hashlib.sha256(data).digest(), cid_to_bytes(cid)),
                action="forge")
        elif kind == "junk":
            forger = writers[who]
            junk = forger.store.put(b'{"junk": true}')
            try:
                suite.transact(forger.identity.account, suite.records.functions.anchorBatch(
                    os.urandom(32), patient.address, AUTHOR_SCOPES[who], os.urandom(32), 2, os.urandom(32),
                    cid_to_bytes(junk)), action="junk")
            except AccessDenied:
                pass

    doctor = people["doctor"]
    grant = patient.grant(doctor.address, scopes, expires_at=suite.now() + DAY)
    expected = {r for r, scope in written if scope & ~scopes == 0}
    if grant.key_share is None:
        assert expected == set()
        return
    share = KeyShare.from_bytes(store.get(grant.key_share))
    assert {e.record_id for e in share.entries} == expected
    for entry in share.entries:
        info = patient.get_record(entry.record_id)
        assert info.scope & ~scopes == 0
        blob = store.get(info.cid)
        header, offset = parse_header(blob)
        binding = check_header(info, header)
        assert binding.scope & ~scopes == 0
        # the shared key opens exactly this record's ciphertext, bound to its true identity
        key = open_sealed(doctor.identity, entry.wrapped, entry.key_version, binding)
        plaintext = b"".join(iter_decrypt(memoryview(blob)[offset:], key, record_id=info.record_id,
                                          version=header.version, context=binding.context))
        assert plaintext.startswith(b"{")
