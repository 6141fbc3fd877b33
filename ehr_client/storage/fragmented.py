"""`FragmentedStore`: a `BlobStore` that erasure-codes each blob across several storage nodes.

A blob becomes n fragments (zfec Reed-Solomon), any k of which rebuild it, each on a different
node (any `BlobStore`: `IpfsStore` for Kubo nodes, `LocalStore` for small setups and tests). A
placement manifest (see `_fragment_manifest`) lists each fragment's node, CID and sha-256; it is
replicated on every node, and its CID is what `put` returns and what the client anchors on chain.
So the blob survives the loss of any n - k nodes, and no node holds more than about 1/k of it.

Reads ask every node at once and decode from the first k fragments that arrive intact; a
fragment that is missing, truncated or altered is skipped, and the rebuilt blob is checked
against the manifest's sha-256. Writes need n reachable nodes (spare nodes beyond n take over
from unreachable ones); a write that fails stores nothing that claims to exist.

The manifest never changes after `put`, so the anchored CID stays valid for good. `repair`
rewrites missing or corrupt fragments byte for byte (same bytes, same CID) on their own node when
it answers, or else on a spare node that holds no fragment of the blob yet; readers look for a
fragment on its own node first and then on the spares, so a relocated fragment is found through
the unchanged manifest. To replace a machine for good, point its node id at the new machine in
the configuration and run `repair`.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from types import MappingProxyType, TracebackType
from typing import TypeVar

from ehr_client.errors import BlobNotFound, ConfigError, EHRError, IntegrityError, StorageUnavailable
from ehr_client.storage._fragment_codec import (
    DEFAULT_SHARE_SIZE,
    HEADER_SIZE,
    MAX_FRAGMENTS,
    NONCE_SIZE,
    SegmentCoder,
    decoded_segments,
    encoded_parts,
    rechunk,
)
from ehr_client.storage._fragment_fetch import (
    FragmentCheck,
    FragmentStatus,
    Gathered,
    short_problem,
    check_all,
    gather,
    not_enough_fragments,
    spares_of,
)
from ehr_client.storage._fragment_health import HealthReport, RepairResult
from ehr_client.storage._fragment_manifest import (
    MAX_SEGMENT_SIZE,
    NODE_ID,
    FragmentEntry,
    InvalidManifest,
    Manifest,
)
from ehr_client.storage._fragment_write import Placed, check_placed, place_streaming, place_whole, remove_quietly
from ehr_client.storage.base import BlobStore, DurablePuts
from ehr_client.storage.cid import RAW, Cid, cid_for_bytes, decode_cid
from ehr_client.storage.nodes import StorageConfig

__all__ = [
    "FragmentCheck",
    "FragmentStatus",
    "FragmentedStore",
    "HealthReport",
    "InvalidManifest",
    "Manifest",
    "RepairResult",
]

log = logging.getLogger("ehr_client.storage.fragmented")

DEFAULT_SPOOL_LIMIT = 8 << 20
_PROBE = cid_for_bytes(b"ehr fragmented-store liveness probe")
_T = TypeVar("_T")


class FragmentedStore(DurablePuts):
    """A `BlobStore` over `nodes` (node id -> store) with k-of-n erasure coding.

    `segment_size` (default k MiB, a multiple of k) is how much of a blob is coded at a time;
    streaming writes and reads keep a few segments in memory, not the blob. `spool_limit` is how
    much of each fragment a read keeps in memory before spilling to an anonymous temporary file.
    """

    def __init__(
        self,
        nodes: Mapping[str, BlobStore],
        *,
        k: int,
        n: int,
        segment_size: int | None = None,
        spool_limit: int = DEFAULT_SPOOL_LIMIT,
        cache_size: int = 256,
    ) -> None:
        if not (isinstance(k, int) and isinstance(n, int) and 1 <= k <= n <= MAX_FRAGMENTS):
            raise ConfigError(f"fragment coding needs 1 <= k <= n <= {MAX_FRAGMENTS}; got k={k}, n={n}")
        if len(nodes) < n:
            raise ConfigError(f"n={n} fragments need at least {n} storage nodes, one per fragment; {len(nodes)} given")
        for node_id, store in nodes.items():
            if not NODE_ID.fullmatch(node_id):
                raise ConfigError(f"invalid storage node id {node_id!r}: use letters, digits, '.', '_' or '-' (<= 64)")
            if not isinstance(store, BlobStore):
                raise ConfigError(f"storage node {node_id!r} is not a BlobStore")
        size = k * DEFAULT_SHARE_SIZE if segment_size is None else segment_size
        if size % k or not k <= size <= MAX_SEGMENT_SIZE:
            raise ConfigError(f"segment_size must be a multiple of k={k} between {k} and {MAX_SEGMENT_SIZE}; got {size}")
        self.k, self.n, self.segment_size = k, n, size
        self.spool_limit = spool_limit
        self._nodes = dict(nodes)
        self._cache: OrderedDict[Cid, Manifest] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: StorageConfig) -> FragmentedStore:
        """The store a configuration file describes (see `ehr_client.storage.nodes`)."""
        return cls(config.open_nodes(), k=config.k, n=config.n, segment_size=config.segment_size)

    def __repr__(self) -> str:
        return f"FragmentedStore(k={self.k}, n={self.n}, nodes={list(self._nodes)})"

    @property
    def nodes(self) -> Mapping[str, BlobStore]:
        return MappingProxyType(self._nodes)

    def close(self) -> None:
        for store in self._nodes.values():
            close = getattr(store, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> FragmentedStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- writing ------------------------------------------------------------------------------

    def put(self, data: bytes) -> Cid:
        return self.put_stream((data,))

    def put_stream(self, chunks: Iterable[bytes]) -> Cid:
        """Code and place a blob; memory stays near (k + 2n) x segment_size / k, whatever its size."""
        targets, spares = self._write_targets()
        nonce = secrets.token_bytes(NONCE_SIZE)
        blob_sha = hashlib.sha256()
        size = 0

        def counted() -> Iterator[bytes]:
            nonlocal size
            for chunk in chunks:
                blob_sha.update(chunk)
                size += len(chunk)
                yield chunk

        coder = SegmentCoder(self.k, self.n)  # per call: cheap, and nothing shared between threads
        segments = rechunk(counted(), self.segment_size)
        first = next(segments, None)
        second = next(segments, None) if first is not None else None
        assignment = dict(enumerate(targets))
        if first is None or second is None:
            parts = list(encoded_parts(coder, nonce, [first] if first is not None else []))
            fragments = {i: b"".join(part[i] for part in parts) for i in range(self.n)}
            placed, failed = place_whole(fragments, assignment, list(spares), self._nodes)
            if failed:
                remove_quietly(self._nodes, list(placed.values()))
                raise StorageUnavailable(
                    f"only {len(placed)} of {self.n} fragments could be stored, so nothing was kept ("
                    + "; ".join(f"fragment {i}: {p}" for i, p in sorted(failed.items()))
                    + "); bring the storage nodes back or add spare nodes, then retry"
                )
        else:
            stream = itertools.chain((first, second), segments)
            placed, failed = place_streaming(encoded_parts(coder, nonce, stream), assignment, self._nodes)
            if failed:
                raise StorageUnavailable(
                    "streaming the blob's fragments failed, so nothing was kept ("
                    + "; ".join(f"fragment {i} on {p}" for i, p in sorted(failed.items()))
                    + "); check the storage nodes and retry"
                )
        manifest = Manifest(
            size=size,
            sha256=blob_sha.hexdigest(),
            k=self.k,
            n=self.n,
            segment_size=self.segment_size,
            nonce=nonce,
            fragments=tuple(
                FragmentEntry(i, placed[i].node, placed[i].cid, placed[i].sha256, placed[i].size)
                for i in range(self.n)
            ),
        )
        return self._publish(manifest, placed, extra=spares)

    def _write_targets(self) -> tuple[list[str], list[str]]:
        """n reachable nodes for the fragments (from a random starting point), and the other reachable ones."""
        answers = self._each_node(lambda store: store.has(_PROBE))
        reachable = [node_id for node_id, outcome in answers.items() if not isinstance(outcome, EHRError)]
        if len(reachable) < self.n:
            down = "; ".join(f"{node_id}: {short_problem(o)}" for node_id, o in answers.items() if isinstance(o, EHRError))
            raise StorageUnavailable(
                f"only {len(reachable)} of {len(self._nodes)} storage nodes answer, and a write needs {self.n} "
                f"(one per fragment); nothing was stored ({down}). Bring the nodes back or add spare nodes"
            )
        start = secrets.randbelow(len(reachable))
        rotated = reachable[start:] + reachable[:start]
        return rotated[: self.n], rotated[self.n:]

    def _publish(self, manifest: Manifest, placed: Mapping[int, Placed], *, extra: Iterable[str]) -> Cid:
        data = manifest.to_bytes()
        cid = cid_for_bytes(data)
        required = [p.node for p in placed.values()]
        outcomes = self._each_node(lambda store: store.put(data), only=[*required, *extra])
        stored = [node_id for node_id, o in outcomes.items() if o == cid]
        failed = {node_id: o for node_id, o in outcomes.items() if o != cid and node_id in required}
        if failed:
            remove_quietly(self._nodes, list(placed.values()))
            for node_id in stored:
                try:
                    self._nodes[node_id].remove(cid)
                except EHRError as exc:
                    log.warning("could not remove manifest %s from node %s: %s", cid, node_id, short_problem(exc))
            raise StorageUnavailable(
                "the fragments were stored but the manifest could not be written to their nodes, so nothing was "
                "kept (" + "; ".join(f"{node_id}: {_describe(o)}" for node_id, o in failed.items()) + "); retry"
            )
        self._remember(cid, manifest)
        log.info("stored blob %s as %d-of-%d fragments on %s", cid, self.k, self.n, ", ".join(required))
        return cid

    # --- reading ------------------------------------------------------------------------------

    def manifest(self, cid: Cid) -> Manifest:
        """The placement manifest `cid` names, from the first node that has it."""
        if decode_cid(cid).codec != RAW:
            raise InvalidManifest(f"{cid} is not a fragment manifest (manifests have raw CIDs)")
        with self._cache_lock:
            cached = self._cache.get(cid)
            if cached is not None:
                self._cache.move_to_end(cid)
                return cached

        def fetch(store: BlobStore) -> Manifest:
            data = store.get(cid)
            if cid_for_bytes(data) != cid:
                raise IntegrityError(f"a node returned bytes for {cid} that do not hash to it")
            return Manifest.from_bytes(data)

        problems: dict[str, EHRError] = {}
        pool = ThreadPoolExecutor(max_workers=len(self._nodes), thread_name_prefix="ehr-manifest")
        try:
            futures = {pool.submit(_outcome, fetch, store): node_id for node_id, store in self._nodes.items()}
            for future in as_completed(futures):
                outcome = future.result()
                if isinstance(outcome, Manifest):
                    self._remember(cid, outcome)
                    return outcome
                problems[futures[future]] = outcome
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        invalid = [p for p in problems.values() if isinstance(p, InvalidManifest)]
        if invalid:
            raise invalid[0]
        if all(isinstance(p, BlobNotFound) for p in problems.values()):
            raise BlobNotFound(
                f"no storage node holds manifest {cid}: it was not stored through this set of nodes, or was removed"
            )
        raise StorageUnavailable(
            f"cannot read manifest {cid} from any storage node ("
            + "; ".join(f"{node_id}: {short_problem(p)}" for node_id, p in problems.items())
            + "); bring the nodes back or check the storage configuration"
        )

    def _remember(self, cid: Cid, manifest: Manifest) -> None:
        with self._cache_lock:
            self._cache[cid] = manifest
            self._cache.move_to_end(cid)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def get(self, cid: Cid) -> bytes:
        return b"".join(self.iter_get(cid))

    def iter_get(self, cid: Cid) -> Iterator[bytes]:
        """The blob segment by segment; the last is held back until the whole blob checked out."""
        decode_cid(cid)
        return self._read(cid)

    def _read(self, cid: Cid) -> Iterator[bytes]:
        manifest = self.manifest(cid)
        gathered = gather(manifest, self._nodes, want=manifest.k, spool_limit=self.spool_limit)
        try:
            if len(gathered.fragments) < manifest.k:
                raise not_enough_fragments(cid, manifest, gathered.checks)
            coder = SegmentCoder(manifest.k, manifest.n)
            sha = hashlib.sha256()
            total = 0
            pending = b""
            for segment in decoded_segments(coder, manifest.layout, gathered.fragments):
                sha.update(segment)
                total += len(segment)
                if pending:
                    yield pending
                pending = segment
            if total != manifest.size or sha.hexdigest() != manifest.sha256:
                raise IntegrityError(
                    f"blob {cid} rebuilt from verified fragments does not match its manifest's sha-256; "
                    "the manifest is inconsistent: restore the blob from a backup"
                )
            if pending:
                yield pending
        finally:
            gathered.close()

    def has(self, cid: Cid) -> bool:
        """Whether the manifest and at least k fragments are on reachable nodes.

        Only the (small) manifest is read; fragments are looked up, not fetched or verified.
        """
        decode_cid(cid)
        try:
            manifest = self.manifest(cid)
        except (BlobNotFound, InvalidManifest):
            return False
        spares = spares_of(manifest, self._nodes)

        def present(entry: FragmentEntry) -> bool:
            for node_id in [entry.node, *spares]:
                store = self._nodes.get(node_id)
                try:
                    if store is not None and store.has(entry.cid):
                        return True
                except EHRError:
                    continue
            return False

        with ThreadPoolExecutor(max_workers=manifest.n, thread_name_prefix="ehr-fragment-has") as pool:
            return sum(pool.map(present, manifest.fragments)) >= manifest.k

    def size(self, cid: Cid) -> int:
        return self.manifest(cid).size

    def remove(self, cid: Cid) -> None:
        """Delete every fragment (from its node and any spare), then every replica of the manifest.

        If a node does not answer, the manifest is kept so that a later `remove` can still find
        the fragments; the error names the nodes to bring back.
        """
        decode_cid(cid)
        try:
            manifest = self.manifest(cid)
        except BlobNotFound:
            return
        spares = spares_of(manifest, self._nodes)
        jobs = [(node_id, entry.cid) for entry in manifest.fragments for node_id in [entry.node, *spares]
                if node_id in self._nodes]
        failures = self._remove_all(jobs)
        if not failures:
            failures = self._remove_all([(node_id, cid) for node_id in self._nodes])
        with self._cache_lock:
            self._cache.pop(cid, None)
        if failures:
            raise StorageUnavailable(
                f"blob {cid} was removed only partly: " + "; ".join(failures)
                + ". Run the removal again when these nodes answer (the manifest is kept until every fragment is gone)"
            )

    def _remove_all(self, jobs: list[tuple[str, Cid]]) -> list[str]:
        def remove(job: tuple[str, Cid]) -> str | None:
            node_id, cid = job
            try:
                self._nodes[node_id].remove(cid)
            except EHRError as exc:
                return f"{node_id}: {short_problem(exc)}"
            return None

        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), 16)), thread_name_prefix="ehr-fragment-rm") as pool:
            return sorted({f for f in pool.map(remove, jobs) if f is not None})

    # --- health -------------------------------------------------------------------------------

    def check(self, cid: Cid) -> HealthReport:
        """Read and verify every fragment and look for the manifest on every node."""
        manifest = self.manifest(cid)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ehr-fragment-check") as pool:
            fragments = pool.submit(check_all, manifest, self._nodes)
            replicas = pool.submit(self._each_node, lambda store: store.has(cid))
            checks, answers = fragments.result(), replicas.result()
        return HealthReport(
            manifest_cid=cid,
            size=manifest.size,
            k=manifest.k,
            n=manifest.n,
            fragments=tuple(checks),
            manifest_on=tuple(node_id for node_id, o in answers.items() if o is True),
            manifest_missing=tuple(node_id for node_id, o in answers.items() if o is False),
            unreachable=tuple(node_id for node_id, o in answers.items() if isinstance(o, EHRError)),
        )

    def repair(self, cid: Cid) -> RepairResult:
        """Rebuild missing or corrupt fragments and manifest replicas; the manifest CID stays the same.

        A fragment goes back to its own node if that node answers, else to a reachable spare node
        that holds no fragment of the blob yet; it is accepted only if the node stores it under
        the manifest's CID. Raises `StorageUnavailable` if fewer than k fragments are intact.
        """
        manifest = self.manifest(cid)
        before = self.check(cid)
        if not before.recoverable:
            raise not_enough_fragments(cid, manifest, before.fragments)
        broken = [f for f in before.fragments if f.status is not FragmentStatus.OK]
        reachable = set(before.manifest_on) | set(before.manifest_missing)
        holding = manifest.node_ids | {f.found_on for f in before.fragments if f.found_on}
        spare_pool = [node_id for node_id in self._nodes if node_id in reachable and node_id not in holding]
        first_choice = {f.index: f.node if f.node in reachable else None for f in broken}
        placed: dict[int, Placed] = {}
        failed: dict[int, str] = {}
        if broken:
            placed, failed = self._rebuild(cid, manifest, first_choice, spare_pool)
        copies: list[str] = []
        data = manifest.to_bytes()
        for node_id, outcome in self._each_node(lambda store: store.put(data), only=before.manifest_missing).items():
            if outcome == cid:
                copies.append(node_id)
            else:
                log.info("could not restore manifest %s on node %s: %s", cid, node_id, _describe(outcome))
        for p in placed.values():
            log.info("restored fragment %d of %s on node %s", p.index, cid, p.node)
        return RepairResult(
            manifest_cid=cid,
            before=before,
            after=self.check(cid),
            restored=tuple((i, placed[i].node) for i in sorted(placed)),
            manifest_copies=tuple(copies),
            not_restored=tuple(sorted(failed.items())),
        )

    def _rebuild(
        self, cid: Cid, manifest: Manifest, first_choice: Mapping[int, str | None], spare_pool: list[str]
    ) -> tuple[dict[int, Placed], dict[int, str]]:
        expected = {i: manifest.fragments[i].cid for i in first_choice}
        gathered = gather(manifest, self._nodes, want=manifest.k, spool_limit=self.spool_limit)
        try:
            if len(gathered.fragments) < manifest.k:
                raise not_enough_fragments(cid, manifest, gathered.checks)
            if manifest.layout.segments <= 1:
                built = list(self._rebuilt_parts(manifest, gathered, sorted(first_choice)))
                fragments = {i: b"".join(part[i] for part in built) for i in first_choice}
                placed, failed = place_whole(fragments, first_choice, spare_pool, self._nodes, expected=expected)
            else:
                placed, failed = self._rebuild_streaming(manifest, gathered, first_choice, spare_pool, expected)
        finally:
            gathered.close()
        for index, p in list(placed.items()):
            if p.sha256 != manifest.fragments[index].sha256:
                remove_quietly(self._nodes, [p])
                del placed[index]
                failed[index] = "the rebuilt fragment does not match the manifest's sha-256"
        return placed, failed

    @staticmethod
    def _rebuilt_parts(manifest: Manifest, gathered: Gathered, indices: list[int]) -> Iterator[dict[int, bytes]]:
        for f in gathered.fragments.values():
            f.seek(HEADER_SIZE)
        coder = SegmentCoder(manifest.k, manifest.n)
        segments = decoded_segments(coder, manifest.layout, gathered.fragments)
        return encoded_parts(coder, manifest.nonce, segments, indices)

    def _rebuild_streaming(
        self,
        manifest: Manifest,
        gathered: Gathered,
        first_choice: Mapping[int, str | None],
        spare_pool: list[str],
        expected: Mapping[int, Cid],
    ) -> tuple[dict[int, Placed], dict[int, str]]:
        """Stream rebuilt fragments to their nodes; each failed one is retried on the next spare."""
        placed: dict[int, Placed] = {}
        problems: dict[int, list[str]] = {index: [] for index in first_choice}
        pending: dict[int, str | None] = dict(first_choice)
        while pending:
            assignment = {}
            for index, node_id in pending.items():
                chosen = node_id or (spare_pool.pop(0) if spare_pool else None)
                if chosen is not None:
                    assignment[index] = chosen
            if not assignment:
                break
            parts = self._rebuilt_parts(manifest, gathered, sorted(assignment))
            done, failed = place_streaming(parts, assignment, self._nodes, all_or_nothing=False)
            for index, p in done.items():
                try:
                    check_placed(p, expected[index])
                    placed[index] = p
                except IntegrityError as exc:
                    remove_quietly(self._nodes, [p])
                    failed[index] = f"{p.node}: {short_problem(exc)}"
            for index, problem in failed.items():
                problems[index].append(problem)
            pending = dict.fromkeys(failed)
        not_placed = {
            index: "; ".join(found) or "its node does not answer and no spare node is free"
            for index, found in problems.items() if index not in placed
        }
        return placed, not_placed

    # --- helpers ------------------------------------------------------------------------------

    def _each_node(
        self, action: Callable[[BlobStore], _T], *, only: Iterable[str] | None = None
    ) -> dict[str, _T | EHRError]:
        """`action` on every node (or those in `only`) in parallel; EHR errors are returned, not raised."""
        ids = list(dict.fromkeys(only)) if only is not None else list(self._nodes)
        if not ids:
            return {}
        with ThreadPoolExecutor(max_workers=len(ids), thread_name_prefix="ehr-node") as pool:
            results = pool.map(lambda node_id: _outcome(action, self._nodes[node_id]), ids)
            return dict(zip(ids, results, strict=True))


def _outcome(action: Callable[[BlobStore], _T], store: BlobStore) -> _T | EHRError:
    try:
        return action(store)
    except EHRError as exc:
        return exc


def _describe(outcome: object) -> str:
    if isinstance(outcome, BaseException):
        return short_problem(outcome)
    return f"stored it as {outcome}"

