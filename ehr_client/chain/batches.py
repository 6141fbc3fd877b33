"""Which anchored batch holds a record id: the id names it, the registry says where its event is.

A batched record's id starts with its batch's id and carries its leaf index
(`ehr_client.chain.ids`). `RecordRegistry.anchoredNear` answers, from the batch's one slot, which 256
blocks hold that batch's `BatchAnchored` event, so a look-up is one view call and one log query of
256 blocks filtered by the batch id, whatever the chain's length; the event then confirms the whole
id (one hash), and an id that names no anchored batch is refused without any log query. Located
events are kept in a bounded cache once they are settled (a short fork cannot move them any more).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from eth_utils import to_checksum_address

from ehr_client.chain.calls import Call, call_many
from ehr_client.chain.client import ChainClient, EventRecord
from ehr_client.chain.ids import batched_record_id_of, leaf_index_named_by
from ehr_client.errors import ChainUnavailable

_CACHE = 4096


class BatchIndex:
    def __init__(self, chain: ChainClient) -> None:
        self.chain = chain
        self._lock = threading.Lock()
        self._found: OrderedDict[bytes, tuple[EventRecord, int]] = OrderedDict()

    def locate(self, record_id: bytes, *, patient: str | None = None) -> tuple[EventRecord, int] | None:
        """The `BatchAnchored` event and leaf index of a batched record id, or None (with `patient`: None
        also when the batch holds another patient's records)."""
        ((_, first, last, batch_id),) = call_many(self.chain, [Call(self.chain.records, "anchoredNear", (record_id,))],
                                                  action="look up record")
        return self.locate_in(record_id, bytes(batch_id), int(first), int(last), patient=patient)

    def locate_in(self, record_id: bytes, batch_id: bytes, first: int, last: int, *,
                  patient: str | None = None) -> tuple[EventRecord, int] | None:
        """`locate`, given what `anchoredNear(record_id)` answered: the batch its id names and the blocks
        holding that batch's event. No log query when the id names no batch (`batch_id` zero). What was
        found earlier is used only while the chain still says the same: the batch, in the same blocks
        (a reorganisation may have dropped it or anchored it again elsewhere)."""
        if not any(batch_id):
            self._forget(record_id)
            return None
        hit = self._cached(record_id)
        if hit is not None and (bytes(hit[0].args["batchId"]) != batch_id
                                or not first <= hit[0].block_number <= last):
            self._forget(record_id)
            hit = None
        if hit is None:
            hit = self._query(record_id, batch_id, first, last)
        return _of_patient(hit, patient)

    def _query(self, record_id: bytes, batch_id: bytes, first: int, last: int) -> tuple[EventRecord, int] | None:
        events = [e for e in self.chain.get_events("RecordRegistry", "BatchAnchored", filters={"batchId": batch_id},
                                                   from_block=first, to_block=last)
                  if bytes(e.args["batchId"]) == batch_id]  # a node may answer more than it was asked
        if not events:
            raise ChainUnavailable(
                f"the chain node at {self.chain.rpc_url} holds batch 0x{batch_id.hex()} but returned no event for it "
                f"in blocks {first}-{last}, where the registry says it is: the node is behind, pruned its logs, or "
                "serves another chain; nothing was read. Retry, or use another node"
            )
        event = events[0]
        args = event.args
        index = leaf_index_named_by(record_id)
        if index >= int(args["leafCount"]) or batched_record_id_of(
                to_checksum_address(str(args["author"])), bytes(args["batchKey"]), index) != record_id:
            return None  # the id starts with an anchored batch's id but names none of its leaves
        if self.chain.settled(event.block_number):
            with self._lock:
                self._found[record_id] = (event, index)
                while len(self._found) > _CACHE:
                    self._found.popitem(last=False)
        return event, index

    def _cached(self, record_id: bytes) -> tuple[EventRecord, int] | None:
        with self._lock:
            return self._found.get(record_id)

    def _forget(self, record_id: bytes) -> None:
        with self._lock:
            self._found.pop(record_id, None)


def _of_patient(hit: tuple[EventRecord, int] | None, patient: str | None) -> tuple[EventRecord, int] | None:
    if hit is None or patient is None:
        return hit
    return hit if to_checksum_address(str(hit[0].args["patient"])) == to_checksum_address(patient) else None
