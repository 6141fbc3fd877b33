"""What the global options resolve to, and the state `ehr node up` leaves in the home directory.

Kept free of web3, the client and the stores, so that the root command (and `ehr --help`)
starts without loading them; :mod:`ehr_client.cli._context` builds the heavy objects.

Home layout (`--home`, default ~/.ehr)::

    keys/<wallet>/           the keystore of one identity (wallet + X25519 key versions)
    journal/<wallet>/        the client's journal of stored-but-not-anchored writes
    store/                   the embedded LocalStore (unless --store-dir)
    deployments/<net>.json   where `ehr deploy` writes the suite it deployed (see `deployment_candidates`)
    node/                    `ehr node up` state: pidfiles, rpc/api URLs, logs, Anvil state, Kubo repo,
                             and store.json: the blob store commands use by default (`node up --ipfs`)
"""

from __future__ import annotations

import enum
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WALLET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # what Keystore accepts as a wallet name
DEPLOYMENTS_ENV = "EHR_DEPLOYMENTS_DIR"
STORE_STATE = "store"  # <home>/node/store.json


class StoreKind(str, enum.Enum):
    local = "local"
    ipfs = "ipfs"
    fragmented = "fragmented"


@dataclass(frozen=True)
class Settings:
    """What the global options and their environment variables resolved to."""

    network: str = "local"
    rpc: str | None = None
    store: StoreKind = StoreKind.local
    store_dir: Path | None = None
    ipfs_api: str | None = None
    home: Path = Path("~/.ehr")
    wallet: str = "default"
    password_file: Path | None = None
    deployment: Path | None = None

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def node_dir(self) -> Path:
        return self.home_dir / "node"

    def keystore_dir(self, wallet: str | None = None) -> Path:
        return self.home_dir / "keys" / (wallet or self.wallet)

    @property
    def deployment_name(self) -> str:
        """`<network>.json`, with the network's ':' turned into '-' for file names."""
        return f"{self.network.replace(':', '-')}.json"

    def deployment_candidates(self) -> list[Path]:
        """Where a deployment file is looked for, first match wins: --deployment (alone, if given);
        else $EHR_DEPLOYMENTS_DIR/<network>.json (alone, if set); else <home>/deployments/<network>.json,
        then ./deployments/<network>.json (where `ape run deploy` writes in a checkout)."""
        if self.deployment is not None:
            return [self.deployment.expanduser()]
        override = os.environ.get(DEPLOYMENTS_ENV)
        if override:
            return [Path(override).expanduser() / self.deployment_name]
        return [self.home_dir / "deployments" / self.deployment_name, Path.cwd() / "deployments" / self.deployment_name]

    @property
    def deployment_target(self) -> Path:
        """Where `ehr deploy` writes: the first candidate (never ./deployments unless told)."""
        return self.deployment_candidates()[0]

    def deployment_file(self) -> Path:
        """The first candidate that exists, else where `ehr deploy` would write."""
        for path in self.deployment_candidates():
            if path.is_file():
                return path
        return self.deployment_target


def read_node_state(node_dir: Path, name: str) -> dict[str, Any] | None:
    """The JSON state `ehr node up` wrote for `name` ("anvil", "kubo" or "store"), if any."""
    try:
        data = json.loads((node_dir / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remembered_store(node_dir: Path) -> StoreKind | None:
    """The store `ehr node up --ipfs` recorded for this home, if any."""
    state = read_node_state(node_dir, STORE_STATE) or {}
    try:
        return StoreKind(state.get("store"))
    except ValueError:
        return None


def remember_store(node_dir: Path, store: StoreKind | None) -> None:
    """Record (or with None, forget) the store commands under this home use by default."""
    path = node_dir / f"{STORE_STATE}.json"
    if store is None:
        path.unlink(missing_ok=True)
        return
    tmp = node_dir / f".{STORE_STATE}.json.tmp"
    tmp.write_text(json.dumps({"store": store.value}) + "\n")
    os.replace(tmp, path)
