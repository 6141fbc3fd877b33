"""Writing fragments to their nodes, in parallel, whole (small blobs) or streamed (large ones).

Every fragment carries the blob's random nonce in its header, so its bytes are unique to one
put: removing the fragments of a failed write can never delete data another write relies on.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ehr_client.errors import EHRError, IntegrityError
from ehr_client.storage._fragment_fetch import short_problem
from ehr_client.storage.base import BlobStore
from ehr_client.storage.cid import RAW, Cid, cid_from_digest, decode_cid

log = logging.getLogger("ehr_client.storage.fragmented")

_POLL = 0.05


@dataclass(frozen=True)
class Placed:
    index: int
    node: str
    cid: Cid
    sha256: str
    size: int


def check_placed(placed: Placed, expected: Cid | None) -> None:
    """The node's CID must name the bytes sent (raw CIDs) and, if given, be the expected one."""
    info = decode_cid(placed.cid)
    if info.codec == RAW and placed.cid != cid_from_digest(bytes.fromhex(placed.sha256)):
        raise IntegrityError(f"node {placed.node} stored fragment {placed.index} under a CID that does not name it")
    if expected is not None and placed.cid != expected:
        raise IntegrityError(
            f"node {placed.node} stored fragment {placed.index} as {placed.cid}, not {expected} as the manifest "
            "says (a node of another kind chunks large blobs differently)"
        )


def remove_quietly(nodes: Mapping[str, BlobStore], placed: Iterator[Placed] | list[Placed]) -> None:
    for p in placed:
        try:
            nodes[p.node].remove(p.cid)
        except EHRError as exc:
            log.warning("could not remove fragment %s from node %s: %s", p.cid, p.node, short_problem(exc))


def place_whole(
    fragments: Mapping[int, bytes],
    first_choice: Mapping[int, str | None],
    spare_pool: list[str],
    nodes: Mapping[str, BlobStore],
    *,
    expected: Mapping[int, Cid] | None = None,
) -> tuple[dict[int, Placed], dict[int, str]]:
    """Put each fragment on its first-choice node, else on the next unused node of `spare_pool`.

    Returns what was placed and, per fragment that could not be placed, the problems met.
    """
    lock = threading.Lock()

    def next_spare() -> str | None:
        with lock:
            return spare_pool.pop(0) if spare_pool else None

    def place(index: int) -> Placed | str:
        data = fragments[index]
        sha = hashlib.sha256(data).hexdigest()
        problems: list[str] = []
        node_id = first_choice.get(index) or next_spare()
        while node_id is not None:
            try:
                placed = Placed(index, node_id, nodes[node_id].put(data), sha, len(data))
                try:
                    check_placed(placed, expected.get(index) if expected else None)
                except IntegrityError:
                    remove_quietly(nodes, [placed])
                    raise
                return placed
            except EHRError as exc:
                problems.append(f"{node_id}: {short_problem(exc)}")
            node_id = next_spare()
        return "; ".join(problems) or "no node left to put it on"

    with ThreadPoolExecutor(max_workers=max(1, len(fragments)), thread_name_prefix="ehr-fragment-put") as pool:
        outcomes = dict(zip(fragments, pool.map(place, fragments), strict=True))
    placed = {i: o for i, o in outcomes.items() if isinstance(o, Placed)}
    failed = {i: o for i, o in outcomes.items() if isinstance(o, str)}
    return placed, failed


class _Aborted(Exception):
    """Raised inside a node's upload to stop it, and in the encoder when that upload is dead."""


class _Feed:
    """One fragment's bytes handed from the encoding thread to one node's upload, one part at a time."""

    def __init__(self, abort_all: threading.Event) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=1)
        self._abort_all = abort_all
        self.dead = threading.Event()

    def _stopped(self) -> bool:
        return self._abort_all.is_set() or self.dead.is_set()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                if self._stopped():
                    raise _Aborted() from None
                continue
            if self._stopped():
                raise _Aborted()
            if item is None:
                return
            yield item

    def put(self, item: bytes | None) -> None:
        while True:
            if self._stopped():
                raise _Aborted()
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue


def place_streaming(
    parts: Iterator[Mapping[int, bytes]],
    assignment: Mapping[int, str],
    nodes: Mapping[str, BlobStore],
    *,
    all_or_nothing: bool = True,
) -> tuple[dict[int, Placed], dict[int, str]]:
    """Stream each fragment to its node (`put_stream`), all in parallel, in bounded memory.

    At most one part per fragment waits in a queue, so memory stays near (fragments) x (part
    size). With `all_or_nothing`, one failed upload stops every upload and the fragments already
    stored are removed; otherwise the other uploads carry on. Returns what was placed and, per
    failed fragment, why. An exception from `parts` itself stops everything, removes what was
    stored and is re-raised.
    """
    abort = threading.Event()
    feeds = {index: _Feed(abort) for index in assignment}
    hashes = {index: hashlib.sha256() for index in assignment}
    sizes = dict.fromkeys(assignment, 0)

    def on_done(index: int, future: Future[Cid]) -> None:
        if future.exception() is not None:
            feeds[index].dead.set()
            if all_or_nothing:
                abort.set()

    source_error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=len(assignment), thread_name_prefix="ehr-fragment-stream") as pool:
        futures = {index: pool.submit(nodes[node].put_stream, iter(feeds[index])) for index, node in assignment.items()}
        for index, future in futures.items():
            future.add_done_callback(functools.partial(on_done, index))
        try:
            for part in itertools.chain(parts, [None]):
                if abort.is_set():
                    break
                for index, feed in feeds.items():
                    if feed.dead.is_set():
                        continue
                    data = part[index] if part is not None else None
                    if data is not None:
                        hashes[index].update(data)
                        sizes[index] += len(data)
                    try:
                        feed.put(data)
                    except _Aborted:
                        continue
        except BaseException as exc:
            source_error = exc
            abort.set()
    placed: dict[int, Placed] = {}
    failed: dict[int, str] = {}
    unexpected: BaseException | None = None
    for index, future in futures.items():
        node = assignment[index]
        error = future.exception()
        if error is None:
            p = Placed(index, node, future.result(), hashes[index].hexdigest(), sizes[index])
            try:
                check_placed(p, None)
                placed[index] = p
            except IntegrityError as bad:
                remove_quietly(nodes, [p])
                failed[index] = f"{node}: {short_problem(bad)}"
        elif isinstance(error, EHRError):
            failed[index] = f"{node}: {short_problem(error)}"
        elif isinstance(error, _Aborted):
            failed[index] = f"{node}: stopped because another fragment failed"
        else:
            unexpected = unexpected or error
    if source_error is not None or unexpected is not None or (all_or_nothing and failed):
        remove_quietly(nodes, list(placed.values()))
        placed = {}
    if source_error is not None:
        raise source_error
    if unexpected is not None:
        raise unexpected
    return placed, failed
