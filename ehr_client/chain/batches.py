"""Which anchored batch holds a record id, from the `BatchAnchored` events alone.

A batched record's id is `batched_record_id_of(author, batchKey, index)` for an index below the
batch's leaf count, all of which the event carries, so the ids of every batch are computed
without fetching a manifest. Ids are computed from a per-batch prefix (one keccak a leaf) and the
scan keeps no index in memory: only a bounded cache of the ids found. With a patient, only that
patient's batches are scanned (the event is indexed by patient), which is what custodians use,
so a stranger anchoring huge batches of his own cannot make their lookups slow.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator

from eth_utils import to_checksum_address

from ehr_client.chain.client import ChainClient, EventRecord
from ehr_client.chain.ids import batched_record_ids

_CACHE = 4096


def _leaf_ids(event: EventRecord) -> Iterator[tuple[int, bytes]]:
    return batched_record_ids(to_checksum_address(event.args["author"]), bytes(event.args["batchKey"]),
                              int(event.args["leafCount"]))


class BatchIndex:
    def __init__(self, chain: ChainClient) -> None:
        self.chain = chain
        self._lock = threading.Lock()
        self._found: OrderedDict[bytes, tuple[EventRecord, int]] = OrderedDict()

    def locate(self, record_id: bytes, *, patient: str | None = None) -> tuple[EventRecord, int] | None:
        """The `BatchAnchored` event and leaf index of a batched record id, or None."""
        with self._lock:
            hit = self._found.get(record_id)
        if hit is not None:
            return hit
        filters = {"patient": to_checksum_address(patient)} if patient else None
        for event in self.chain.get_events("RecordRegistry", "BatchAnchored", filters=filters):
            for index, leaf_id in _leaf_ids(event):
                if leaf_id == record_id:
                    with self._lock:
                        self._found[record_id] = (event, index)
                        while len(self._found) > _CACHE:
                            self._found.popitem(last=False)
                    return event, index
        return None
