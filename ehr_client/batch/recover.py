"""Re-anchoring acknowledged writes a chain lost: a dev node killed before it saved, a reset.

Every acknowledged write is in the author's logs (`acknowledged.log` for single writes,
`batch/batches.log` for batches), and its blob is in the store. Because ids are derived from the
author and the write's salt or batch key, anchoring the logged write again recreates exactly the
record that was acknowledged: the same id, the same blob (sealed to that id), the same manifest.
Whatever is still on chain is left alone; nothing is ever anchored twice. Then the consent
decisions and erasures this identity acknowledged as a patient are checked the same way
(`ehr_client.batch.redecide`).
"""

from __future__ import annotations

import hashlib

from ehr_client.batch.journal import BatchJournal
from ehr_client.batch.recovered import Recovered
from ehr_client.batch.redecide import redecide
from ehr_client.chain.ids import batch_id_of
from ehr_client.chain.types import Status
from ehr_client.client import EHRClient
from ehr_client.errors import BlobNotFound, EHRError, StorageError
from ehr_client.storage import Cid, cid_to_bytes


def _blob_ok(client: EHRClient, cid: Cid, sha256: bytes) -> bool:
    try:
        return hashlib.sha256(client.store.get(cid)).digest() == sha256
    except (BlobNotFound, StorageError):
        return False


def recover(client: EHRClient) -> list[Recovered]:
    """Check every write this identity acknowledged against the chain and anchor again what it lost,
    then apply again the grants, revocations and erasures it acknowledged that the chain lost.

    Raises:
        ChainMismatch: the node serves another chain than the deployment (redeploy first; then the
            deployment's addresses hold none of these records and nothing can be recovered there).
        JournalDamaged: a log line is damaged, or a log was cut short (the message says which).
    """
    chain, records = client.chain, client.chain.records.functions
    chain.check_chain()
    out: list[Recovered] = []
    # Batches first: an acknowledged amendment may amend a batched record the chain also lost.
    for batch in BatchJournal(client.state_dir, client.address).anchored_batches():
        key = bytes.fromhex(batch["key"][2:])
        batch_id = batch_id_of(client.address, key)
        if bytes(chain.call(records.batchCommitment(batch_id), action="look up batch")) != bytes(32):
            out.append(Recovered("batch", batch_id, "on chain"))
            continue
        manifest = Cid(batch["manifestCid"])
        if not _blob_ok(client, manifest, bytes.fromhex(batch["manifestHash"][2:])):
            out.append(Recovered("batch", batch_id, "blob missing", f"manifest {manifest} is not in the store"))
            continue
        try:
            tx = chain.transact(client.identity.account, records.anchorBatch(
                key, batch["patient"], int(batch["scopes"]), bytes.fromhex(batch["root"][2:]), int(batch["count"]),
                bytes.fromhex(batch["manifestHash"][2:]), cid_to_bytes(manifest)), action="re-anchor batch")
        except EHRError as exc:
            out.append(Recovered("batch", batch_id, "refused", str(exc)))
            continue
        out.append(Recovered("batch", batch_id, "re-anchored", tx=tx))
    for entry in client.journal.acknowledged():
        record_id = bytes.fromhex(entry.record_id[2:])
        if int(chain.call(records.recordStatus(record_id), action="look up record")) != Status.NONE:
            out.append(Recovered("record", record_id, "on chain"))
            continue
        if entry.salt is None or not _blob_ok(client, Cid(entry.cid), bytes.fromhex(entry.content_hash[2:])):
            out.append(Recovered("record", record_id, "blob missing",
                                 f"{entry.cid} is not in the store (or altered); the record cannot be anchored again"))
            continue
        salt, content_hash, pointer = bytes.fromhex(entry.salt[2:]), bytes.fromhex(entry.content_hash[2:]), \
            cid_to_bytes(Cid(entry.cid))
        try:
            if entry.previous_id is None:
                fn = records.addRecord(salt, entry.patient, content_hash, entry.scope, pointer)
            else:
                previous = client.get_record(bytes.fromhex(entry.previous_id[2:]))
                fn = (records.amendBatchedRecord(previous.batch.as_arg(), salt, content_hash, pointer)
                      if previous.batch is not None and previous.status == "active"
                      and int(chain.call(records.recordStatus(previous.record_id), action="look up record")) == 0
                      else records.amendRecord(previous.record_id, salt, content_hash, pointer))
            tx = chain.transact(client.identity.account, fn, action="re-anchor record")
        except EHRError as exc:
            out.append(Recovered("record", record_id, "refused", str(exc)))
            continue
        out.append(Recovered("record", record_id, "re-anchored", tx=tx))
    return out + redecide(client)
