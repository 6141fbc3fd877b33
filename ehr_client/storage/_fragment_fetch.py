"""Reading fragments back: every copy checked against the manifest, all nodes asked at once.

A fragment is looked for on the node the manifest names, then on "spare" nodes (configured
nodes that hold no other fragment of the blob), where `repair` puts a fragment whose node is
gone. A copy counts only if its length, sha-256 and header match the manifest; anything else is
recorded as a problem and skipped.
"""

from __future__ import annotations

import enum
import hashlib
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import BinaryIO

from ehr_client.errors import BlobNotFound, EHRError, IntegrityError, StorageError, StorageUnavailable
from ehr_client.storage._fragment_codec import HEADER_SIZE, fragment_header
from ehr_client.storage._fragment_manifest import FragmentEntry, Manifest
from ehr_client.storage.base import BlobStore
from ehr_client.storage.cid import Cid

_MAX_PROBLEM = 160


class FragmentStatus(str, enum.Enum):
    OK = "ok"
    MISSING = "missing"
    CORRUPT = "corrupt"
    UNREACHABLE = "unreachable"
    UNCONFIGURED = "unconfigured"


@dataclass(frozen=True)
class FragmentCheck:
    """What reading one fragment found.

    `node` is where the manifest placed it; `status` is OK when an intact copy was found there or
    on a spare (`found_on`); `problem` says what went wrong on `node`, if anything.
    """

    index: int
    node: str
    status: FragmentStatus
    found_on: str | None
    problem: str = ""

    def describe(self) -> str:
        where = f"fragment {self.index} on {self.node}"
        if self.status is FragmentStatus.OK:
            return where + ("" if self.found_on == self.node else f": {self.problem}; intact copy on {self.found_on}")
        return f"{where}: {self.status.value}" + (f" ({self.problem})" if self.problem else "")


def short_problem(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= _MAX_PROBLEM else text[: _MAX_PROBLEM - 1] + "…"


def spares_of(manifest: Manifest, nodes: Mapping[str, BlobStore]) -> list[str]:
    """Configured nodes the manifest places nothing on."""
    return [node_id for node_id in nodes if node_id not in manifest.node_ids]


def _read_copy(
    store: BlobStore, entry: FragmentEntry, nonce: bytes, sink: BinaryIO | None, cancelled: threading.Event
) -> tuple[FragmentStatus, str] | None:
    """Stream one copy, checking it; None when cancelled."""
    if sink is not None:
        sink.seek(0)
        sink.truncate()
    sha = hashlib.sha256()
    head = bytearray()
    total = 0
    try:
        chunks = store.iter_get(entry.cid)
        try:
            for chunk in chunks:
                if cancelled.is_set():
                    return None
                total += len(chunk)
                if total > entry.size:
                    return FragmentStatus.CORRUPT, "longer than the manifest says"
                sha.update(chunk)
                if len(head) < HEADER_SIZE:
                    head += chunk[: HEADER_SIZE - len(head)]
                if sink is not None:
                    sink.write(chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
    except BlobNotFound:
        return FragmentStatus.MISSING, ""
    except IntegrityError as exc:
        return FragmentStatus.CORRUPT, short_problem(exc)
    except StorageError as exc:
        return FragmentStatus.UNREACHABLE, short_problem(exc)
    if total != entry.size or sha.hexdigest() != entry.sha256:
        return FragmentStatus.CORRUPT, "bytes differ from the manifest's sha-256"
    if bytes(head) != fragment_header(nonce, entry.index):
        return FragmentStatus.CORRUPT, "header names another blob or fragment"
    return FragmentStatus.OK, ""


def read_fragment(
    entry: FragmentEntry,
    nonce: bytes,
    nodes: Mapping[str, BlobStore],
    spares: Sequence[str],
    *,
    sink: BinaryIO | None,
    cancelled: threading.Event,
) -> FragmentCheck | None:
    """Find an intact copy of one fragment (into `sink`, if given); None when cancelled."""
    store = nodes.get(entry.node)
    if store is None:
        status, problem = FragmentStatus.UNCONFIGURED, "node is not in the storage configuration"
    else:
        outcome = _read_copy(store, entry, nonce, sink, cancelled)
        if outcome is None:
            return None
        status, problem = outcome
        if status is FragmentStatus.OK:
            return FragmentCheck(entry.index, entry.node, status, entry.node)
    for spare in spares:
        if cancelled.is_set():
            return None
        try:
            present = nodes[spare].has(entry.cid)
        except EHRError:
            continue
        if not present:
            continue
        outcome = _read_copy(nodes[spare], entry, nonce, sink, cancelled)
        if outcome is None:
            return None
        if outcome[0] is FragmentStatus.OK:
            return FragmentCheck(entry.index, entry.node, FragmentStatus.OK, spare, problem)
    return FragmentCheck(entry.index, entry.node, status, None, problem)


@dataclass
class Gathered:
    """Verified fragment files by index (positioned after the header) and what each read found."""

    fragments: dict[int, BinaryIO] = field(default_factory=dict)
    checks: list[FragmentCheck] = field(default_factory=list)

    def close(self) -> None:
        for f in self.fragments.values():
            f.close()
        self.fragments.clear()


def gather(manifest: Manifest, nodes: Mapping[str, BlobStore], *, want: int, spool_limit: int) -> Gathered:
    """Ask every node at once; keep the first `want` fragments that arrive intact, drop the rest.

    Fragments are spooled to anonymous temporary files past `spool_limit` bytes each, so a large
    blob does not have to fit in memory.
    """
    spares = spares_of(manifest, nodes)
    result = Gathered()
    lock = threading.Lock()
    cancelled = threading.Event()
    finished = False

    def fetch(entry: FragmentEntry) -> FragmentCheck | None:
        spool: BinaryIO = tempfile.SpooledTemporaryFile(max_size=spool_limit)  # type: ignore[assignment]
        try:
            check = read_fragment(entry, manifest.nonce, nodes, spares, sink=spool, cancelled=cancelled)
            with lock:
                if check is not None and check.status is FragmentStatus.OK and not finished \
                        and len(result.fragments) < want:
                    spool.seek(HEADER_SIZE)
                    result.fragments[entry.index] = spool
                    if len(result.fragments) >= want:
                        cancelled.set()
                    return check
        except BaseException:
            spool.close()
            raise
        spool.close()
        return check

    pool = ThreadPoolExecutor(max_workers=len(manifest.fragments), thread_name_prefix="ehr-fragment-read")
    try:
        futures = [pool.submit(fetch, entry) for entry in manifest.fragments]
        for future in as_completed(futures):
            check = future.result()
            if check is not None:
                result.checks.append(check)
            with lock:
                if len(result.fragments) >= want:
                    break
        with lock:
            finished = True
    except BaseException:
        with lock:
            finished = True
        result.close()
        raise
    finally:
        cancelled.set()
        pool.shutdown(wait=False, cancel_futures=True)
    return result


def check_all(manifest: Manifest, nodes: Mapping[str, BlobStore]) -> list[FragmentCheck]:
    """Read and verify every fragment (nothing kept), in parallel."""
    spares = spares_of(manifest, nodes)
    never = threading.Event()

    def one(entry: FragmentEntry) -> FragmentCheck:
        check = read_fragment(entry, manifest.nonce, nodes, spares, sink=None, cancelled=never)
        return check or FragmentCheck(entry.index, entry.node, FragmentStatus.UNREACHABLE, None, "cancelled")

    with ThreadPoolExecutor(max_workers=len(manifest.fragments), thread_name_prefix="ehr-fragment-check") as pool:
        return sorted(pool.map(one, manifest.fragments), key=lambda c: c.index)


def not_enough_fragments(cid: Cid, manifest: Manifest, checks: Iterable[FragmentCheck]) -> StorageUnavailable:
    ordered = sorted(checks, key=lambda c: c.index)
    good = sum(1 for c in ordered if c.status is FragmentStatus.OK)
    failed = "; ".join(c.describe() for c in ordered if c.status is not FragmentStatus.OK)
    return StorageUnavailable(
        f"only {good} of {manifest.n} fragments of blob {cid} were found intact, and {manifest.k} are needed "
        f"to rebuild it ({failed}); bring the failed storage nodes back, then run `ehr storage repair`"
    )
