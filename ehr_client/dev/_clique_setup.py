"""The files a Clique network is made of: keys, genesis, per-node TOML config.

Every key is generated on this machine. A validator's signing key is stored only as a geth
keystore file (scrypt) under its data directory, with a random password in a 0600 file next to
it; the p2p node key is geth's `nodekey` file, so every node's enode id is known before it starts.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_keys import keys

GAS_LIMIT = 30_000_000
# A validator's pool refuses a transaction from a peer tipping less (geth's --miner.gasprice, its
# default, set explicitly so that the supervisor knows it: what it hands over by JSON-RPC is local
# to the node it reaches, and a local transaction is exempt from the floor).
MINER_TIP_FLOOR_WEI = 10**9
# A validator's keystore: geth's standard scrypt cost. A lower cost would only speed up `up`.
SCRYPT_N = 2**18


def write_private(path: Path, text: str) -> None:
    """Write `text` to a new 0600 file (created with that mode, never world-readable for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def new_validator_key(datadir: Path, password_file: Path, *, scrypt_n: int = SCRYPT_N) -> str:
    """Generate a signing key into `datadir/keystore/` locked by a random password; return its address."""
    account = Account.create()
    password = secrets.token_urlsafe(24)
    write_private(password_file, password + "\n")
    encrypted = Account.encrypt(account.key, password, kdf="scrypt", iterations=scrypt_n)
    # eth-keyfile writes the random 16-byte AES IV as an integer, dropping leading zero bytes
    # (1 key in 256); geth then panics at unlock ("bad IV length"). Encrypt again until it is whole.
    while len(encrypted["crypto"]["cipherparams"]["iv"]) != 32:
        encrypted = Account.encrypt(account.key, password, kdf="scrypt", iterations=scrypt_n)
    address = account.address
    write_private(datadir / "keystore" / f"UTC--ehr--{address[2:].lower()}", json.dumps(encrypted))
    return str(address)


def new_node_key(datadir: Path) -> str:
    """Write geth's p2p `nodekey` and return the node's public id (the enode's user part)."""
    key = keys.PrivateKey(secrets.token_bytes(32))
    write_private(datadir / "geth" / "nodekey", key.to_hex()[2:])
    return str(key.public_key.to_hex()[2:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def genesis(*, chain_id: int, period: int, epoch: int, signers: Sequence[str],
            alloc: Mapping[str, int]) -> dict[str, Any]:
    """A Clique genesis at Shanghai (Clique cannot seal Cancun blocks) with `signers` as the signer set."""
    ordered = sorted((s.lower() for s in signers), key=lambda a: int(a, 16))
    extradata = "0x" + "00" * 32 + "".join(a[2:] for a in ordered) + "00" * 65
    forks = ("homestead", "eip150", "eip155", "eip158", "byzantium", "constantinople", "petersburg",
             "istanbul", "berlin", "london")
    config: dict[str, Any] = {"chainId": chain_id, **{f"{fork}Block": 0 for fork in forks},
                              "clique": {"period": period, "epoch": epoch}}
    return {
        "config": config,
        "difficulty": "0x1",
        "gasLimit": hex(GAS_LIMIT),
        "extradata": extradata,
        "alloc": {address.lower(): {"balance": hex(wei)} for address, wei in alloc.items()},
    }


def node_config_toml(p2p_port: int, static_nodes: Sequence[str]) -> str:
    """geth's --config file: the p2p listener on loopback (the --port flag would bind every interface)
    and the static peers (geth 1.13 ignores static-nodes.json)."""
    listed = ", ".join(json.dumps(enode) for enode in static_nodes)
    return (f'[Node.P2P]\nListenAddr = "127.0.0.1:{p2p_port}"\n'
            f"StaticNodes = [{listed}]\nTrustedNodes = [{listed}]\n")
