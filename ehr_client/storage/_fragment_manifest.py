"""The placement manifest of one erasure-coded blob: what it is, where its fragments are.

Canonical JSON (sorted keys, no spaces, UTF-8), small enough to be one IPFS chunk, so its CID is
the raw CIDv1 of its bytes on every node::

    {"format": "ehr-fragments/1", "size": 1000, "sha256": "<hex>", "k": 3, "n": 5,
     "segment_size": 3145728, "padding": 2, "nonce": "<32 hex>",
     "fragments": [{"index": 0, "node": "n1", "cid": "bafk...", "sha256": "<hex>", "size": 356}, ...]}

`segment_size` bytes of blob are coded at a time (the last segment may be shorter); `padding`
is the number of zero bytes appended to the last segment to make it a multiple of k. The nonce
is in every fragment's header, so fragments of two puts of the same bytes never coincide.
Manifests come from the network: `Manifest.from_bytes` treats them as hostile and raises
`InvalidManifest` for anything that is not exactly this shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ehr_client._json import nesting_within, object_without_duplicates, reject_constant
from ehr_client.errors import InvalidRecord
from ehr_client.storage._fragment_codec import MAX_FRAGMENTS, NONCE_SIZE, Layout
from ehr_client.storage.cid import Cid, decode_cid
from ehr_client.storage.ipfs import CHUNK_SIZE

FORMAT = "ehr-fragments/1"
MAX_MANIFEST_BYTES = CHUNK_SIZE
MAX_BLOB_SIZE = (1 << 53) - 1
MAX_SEGMENT_SIZE = 1 << 30
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_NONCE_HEX = re.compile(rf"[0-9a-f]{{{2 * NONCE_SIZE}}}")
_MAX_DEPTH = 3
_TOP_KEYS = frozenset({"format", "size", "sha256", "k", "n", "segment_size", "padding", "nonce", "fragments"})
_FRAGMENT_KEYS = frozenset({"index", "node", "cid", "sha256", "size"})


class InvalidManifest(InvalidRecord):
    """Bytes that should be a fragment manifest are not one (wrong CID, or a corrupt/hostile node)."""


@dataclass(frozen=True)
class FragmentEntry:
    index: int
    node: str
    cid: Cid
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    size: int
    sha256: str
    k: int
    n: int
    segment_size: int
    nonce: bytes
    fragments: tuple[FragmentEntry, ...]

    @property
    def layout(self) -> Layout:
        return Layout(self.size, self.k, self.n, self.segment_size)

    @property
    def padding(self) -> int:
        return self.layout.padding

    @property
    def node_ids(self) -> frozenset[str]:
        return frozenset(entry.node for entry in self.fragments)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "size": self.size,
            "sha256": self.sha256,
            "k": self.k,
            "n": self.n,
            "segment_size": self.segment_size,
            "padding": self.padding,
            "nonce": self.nonce.hex(),
            "fragments": [
                {"index": f.index, "node": f.node, "cid": f.cid, "sha256": f.sha256, "size": f.size}
                for f in self.fragments
            ],
        }

    def to_bytes(self) -> bytes:
        data = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        if len(data) > MAX_MANIFEST_BYTES:
            raise InvalidManifest(f"the manifest would be {len(data)} bytes, over {MAX_MANIFEST_BYTES}; use fewer fragments")
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        if len(data) > MAX_MANIFEST_BYTES:
            raise InvalidManifest(f"not a fragment manifest: {len(data)} bytes, more than {MAX_MANIFEST_BYTES}")
        if not nesting_within(bytes(data), _MAX_DEPTH):
            raise InvalidManifest("not a fragment manifest: JSON nested deeper than a manifest is")
        try:
            raw = json.loads(bytes(data).decode("utf-8"), object_pairs_hook=object_without_duplicates,
                             parse_constant=reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InvalidManifest(f"not a fragment manifest: not canonical JSON ({type(exc).__name__})") from None
        manifest = _from_json(raw)
        if manifest.to_bytes() != bytes(data):
            raise InvalidManifest("not a fragment manifest: the JSON is not in canonical form")
        return manifest


def _bad(problem: str) -> InvalidManifest:
    return InvalidManifest(f"not a valid fragment manifest: {problem}")


def _int(obj: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = obj.get(key)
    if type(value) is not int or not low <= value <= high:
        raise _bad(f"{key!r} must be an integer from {low} to {high}")
    return value


def _str(obj: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad(f"{key!r} is missing or malformed")
    return value


def _keys(obj: Any, expected: frozenset[str], what: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise _bad(f"{what} is not a JSON object")
    if set(obj) != expected:
        raise _bad(f"{what} has keys {sorted(obj)}, expected {sorted(expected)}")
    return obj


def _from_json(raw: Any) -> Manifest:
    top = _keys(raw, _TOP_KEYS, "the manifest")
    if top["format"] != FORMAT:
        raise _bad(f"format is not {FORMAT!r}")
    k = _int(top, "k", 1, MAX_FRAGMENTS)
    n = _int(top, "n", k, MAX_FRAGMENTS)
    size = _int(top, "size", 0, MAX_BLOB_SIZE)
    segment_size = _int(top, "segment_size", k, MAX_SEGMENT_SIZE)
    if segment_size % k:
        raise _bad("segment_size is not a multiple of k")
    layout = Layout(size, k, n, segment_size)
    if _int(top, "padding", 0, k - 1) != layout.padding:
        raise _bad("padding does not match size, k and segment_size")
    nonce = bytes.fromhex(_str(top, "nonce", _NONCE_HEX))
    fragments_raw = top["fragments"]
    if not isinstance(fragments_raw, list) or len(fragments_raw) != n:
        raise _bad(f"'fragments' must list exactly n={n} fragments")
    fragments = tuple(_fragment(item, layout) for item in fragments_raw)
    if [f.index for f in fragments] != list(range(n)):
        raise _bad("fragments must be listed by index 0..n-1, each once")
    if len({f.node for f in fragments}) != n:
        raise _bad("two fragments are placed on the same node")
    return Manifest(size, _str(top, "sha256", _SHA256_HEX), k, n, segment_size, nonce, fragments)


def _fragment(item: Any, layout: Layout) -> FragmentEntry:
    obj = _keys(item, _FRAGMENT_KEYS, "a fragment entry")
    index = _int(obj, "index", 0, layout.n - 1)
    if _int(obj, "size", 0, MAX_BLOB_SIZE) != layout.fragment_size:
        raise _bad(f"fragment {index} has a size that does not match the layout")
    cid = obj["cid"]
    try:
        decode_cid(cid)
    except InvalidRecord as exc:
        raise _bad(f"fragment {index}: {exc}") from None
    return FragmentEntry(index, _str(obj, "node", NODE_ID), Cid(cid), _str(obj, "sha256", _SHA256_HEX),
                         layout.fragment_size)
