"""Which anchored batch holds a record id, from the `BatchAnchored` events alone.

A batched record's id is `batched_record_id_of(author, batchKey, index)` for an index below the
batch's leaf count, all of which the event carries, so the ids of every batch are computed
without fetching a manifest. The index grows incrementally from the last block it saw.
"""

from __future__ import annotations

import threading

from eth_utils import to_checksum_address

from ehr_client.chain.client import ChainClient, EventRecord
from ehr_client.chain.ids import batched_record_id_of


class BatchIndex:
    def __init__(self, chain: ChainClient) -> None:
        self.chain = chain
        self._lock = threading.Lock()
        self._ids: dict[bytes, tuple[EventRecord, int]] = {}
        self._indexed_to: int | None = None

    def locate(self, record_id: bytes) -> tuple[EventRecord, int] | None:
        """The `BatchAnchored` event and leaf index of a batched record id, or None."""
        with self._lock:
            head = self.chain.head()
            start = self.chain.deployment.deploy_block if self._indexed_to is None else self._indexed_to + 1
            if start <= head:
                for event in self.chain.get_events("RecordRegistry", "BatchAnchored", from_block=start, to_block=head):
                    author, key = to_checksum_address(event.args["author"]), bytes(event.args["batchKey"])
                    for index in range(int(event.args["leafCount"])):
                        self._ids.setdefault(batched_record_id_of(author, key, index), (event, index))
                self._indexed_to = head
            return self._ids.get(record_id)
