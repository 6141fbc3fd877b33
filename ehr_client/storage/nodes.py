"""The storage node configuration of a `FragmentedStore`: which nodes, and how many fragments.

A TOML file, by default `<home>/ehr-storage.toml` (or `$EHR_STORAGE_CONFIG`)::

    k = 3                      # fragments needed to rebuild a blob
    n = 5                      # fragments written per blob, each on a different node
    # segment_size = 3145728   # optional: blob bytes coded at a time (a multiple of k; default k MiB)
    # timeout = 10.0           # optional: seconds per request to an IPFS node (default 10)
    # retries = 1              # optional: retries per request to an IPFS node (default 1)

    [[nodes]]
    id = "hospital-a"          # stable name, recorded in each manifest: keep it when a machine is replaced
    kind = "ipfs"              # a Kubo node, through its RPC API
    url = "http://10.0.0.5:5001"

    [[nodes]]
    id = "archive"
    kind = "local"             # a directory (LocalStore); relative paths are relative to this file
    path = "fragments/archive"

More nodes than n may be listed: the extra ones are spares that take over writes and repairs
when a node is down. Unknown keys are refused, so a typo cannot silently change the setup.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ehr_client.errors import ConfigError
from ehr_client.storage._fragment_codec import MAX_FRAGMENTS
from ehr_client.storage._fragment_manifest import MAX_SEGMENT_SIZE, NODE_ID
from ehr_client.storage.base import BlobStore
from ehr_client.storage.ipfs import IpfsStore, api_base_url
from ehr_client.storage.local import LocalStore

CONFIG_ENV = "EHR_STORAGE_CONFIG"
CONFIG_NAME = "ehr-storage.toml"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 1

NodeKind = Literal["ipfs", "local"]
_TOP_KEYS = frozenset({"k", "n", "segment_size", "timeout", "retries", "nodes"})
_Fail = Callable[[str], ConfigError]
_NODE_KEYS = {"ipfs": frozenset({"id", "kind", "url", "timeout", "retries"}), "local": frozenset({"id", "kind", "path"})}


@dataclass(frozen=True)
class NodeConfig:
    id: str
    kind: NodeKind
    url: str | None = None
    path: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES

    def open(self) -> BlobStore:
        if self.kind == "ipfs" and self.url is not None:
            return IpfsStore(self.url, timeout=self.timeout, retries=self.retries)
        if self.kind == "local" and self.path is not None:
            return LocalStore(self.path)
        raise ConfigError(f"storage node {self.id!r} of kind {self.kind!r} lacks its url or path")


@dataclass(frozen=True)
class StorageConfig:
    k: int
    n: int
    nodes: tuple[NodeConfig, ...]
    segment_size: int | None = None
    source: Path | None = None

    def open_nodes(self) -> dict[str, BlobStore]:
        return {node.id: node.open() for node in self.nodes}


def storage_config_path(*, explicit: Path | None = None, home: Path | None = None) -> Path:
    """`explicit`, else `$EHR_STORAGE_CONFIG`, else `<home>/ehr-storage.toml` (home default ~/.ehr)."""
    if explicit is not None:
        return explicit.expanduser()
    configured = os.environ.get(CONFIG_ENV)
    if configured:
        return Path(configured).expanduser()
    return (home if home is not None else Path("~/.ehr")).expanduser() / CONFIG_NAME


def load_storage_config(path: Path) -> StorageConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no storage node configuration at {path}: create it (see ehr_client/storage/nodes.py for the format), "
            f"or point --config / ${CONFIG_ENV} at one"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the storage node configuration {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_storage_config(data, source=Path(path))


def parse_storage_config(data: Mapping[str, Any], *, source: Path | None = None) -> StorageConfig:
    where = str(source) if source is not None else "the storage configuration"

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{where}: {problem}")

    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise fail(f"unknown setting(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    k = _int(data, "k", 1, MAX_FRAGMENTS, fail, required=True)
    n = _int(data, "n", 1, MAX_FRAGMENTS, fail, required=True)
    if k is None or n is None or k > n:
        raise fail(f"k (fragments needed, {k}) must not exceed n (fragments written, {n})")
    segment_size = _int(data, "segment_size", k, MAX_SEGMENT_SIZE, fail)
    if segment_size is not None and segment_size % k:
        raise fail(f"segment_size {segment_size} is not a multiple of k={k}")
    timeout = _float(data, "timeout", DEFAULT_TIMEOUT, fail)
    retries = _int(data, "retries", 0, 10, fail)
    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, list) or not all(isinstance(node, dict) for node in nodes_raw):
        raise fail("list the storage nodes as [[nodes]] tables")
    base = source.parent if source is not None else Path.cwd()
    nodes = tuple(
        _node(node, f"nodes[{i}]", base, timeout, DEFAULT_RETRIES if retries is None else retries, fail)
        for i, node in enumerate(nodes_raw)
    )
    ids = [node.id for node in nodes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise fail(f"node id(s) {duplicates} appear more than once; every node needs its own id")
    if len(nodes) < n:
        raise fail(f"n={n} fragments need at least {n} nodes (one per fragment), but {len(nodes)} are listed")
    return StorageConfig(k=k, n=n, nodes=nodes, segment_size=segment_size, source=source)


def _node(
    raw: Mapping[str, Any], where: str, base: Path, timeout: float, retries: int, fail: _Fail
) -> NodeConfig:
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not NODE_ID.fullmatch(node_id):
        raise fail(f"{where}.id must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)")
    where = f"node {node_id!r}"
    kind = raw.get("kind")
    if kind not in _NODE_KEYS:
        raise fail(f"{where}: kind must be 'ipfs' or 'local', not {kind!r}")
    unknown = set(raw) - _NODE_KEYS[kind]
    if unknown:
        raise fail(f"{where}: unknown setting(s) {sorted(unknown)} for a {kind} node; allowed: {sorted(_NODE_KEYS[kind])}")
    if kind == "ipfs":
        url = raw.get("url")
        if not isinstance(url, str) or not url.strip():
            raise fail(f"{where}: an ipfs node needs url = \"http://host:5001\" (its Kubo RPC API)")
        try:
            api_base_url(url)
        except ConfigError as exc:
            raise fail(f"{where}: {exc}") from None
        node_retries = _int(raw, "retries", 0, 10, fail)
        return NodeConfig(node_id, "ipfs", url=url, timeout=_float(raw, "timeout", timeout, fail),
                          retries=retries if node_retries is None else node_retries)
    path = raw.get("path")
    if not isinstance(path, str) or not path.strip():
        raise fail(f"{where}: a local node needs path = \"/some/directory\"")
    resolved = Path(path).expanduser()
    return NodeConfig(node_id, "local", path=resolved if resolved.is_absolute() else base / resolved)


def _int(data: Mapping[str, Any], key: str, low: int, high: int, fail: _Fail, *, required: bool = False) -> int | None:
    value = data.get(key)
    if value is None:
        if required:
            raise fail(f"{key} is missing (an integer from {low} to {high})")
        return None
    if type(value) is not int or not low <= value <= high:
        raise fail(f"{key} must be an integer from {low} to {high}, not {value!r}")
    return value


def _float(data: Mapping[str, Any], key: str, default: float, fail: _Fail) -> float:
    value = data.get(key, default)
    if type(value) not in (int, float) or not 0 < value <= 600:
        raise fail(f"{key} must be a number of seconds above 0 and at most 600, not {value!r}")
    return float(value)
