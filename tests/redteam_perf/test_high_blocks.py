"""The registry's hint past the block height its 3 bytes can name: a real Anvil of its own whose genesis
is block 2^32 - 16 (as a chain with sub-second blocks, or one started from a high block number, gets
there), the suite deployed through the client, a record written and read back by id."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from eth_account import Account

from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.chain.ids import record_id_of
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.storage import LocalStore

ANVIL = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "anvil"
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # Anvil's first dev account
GENESIS_BLOCK = 2**32 - 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def high_chain(tmp_path: Path) -> Iterator[str]:
    """An Anvil whose first block is `GENESIS_BLOCK`, on loopback; stopped by its own pid."""
    genesis = {
        "config": {"chainId": 31337, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0,
                   "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0, "istanbulBlock": 0,
                   "berlinBlock": 0, "londonBlock": 0, "shanghaiTime": 0, "cancunTime": 0},
        "number": hex(GENESIS_BLOCK), "timestamp": "0x0", "gasLimit": "0x1c9c380", "difficulty": "0x0",
        "baseFeePerGas": "0x3b9aca00",
        "alloc": {Account.from_key(DEV_KEY).address: {"balance": hex(10**21)}},
    }
    (tmp_path / "genesis.json").write_text(json.dumps(genesis))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([str(ANVIL), "--init", str(tmp_path / "genesis.json"), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # bounded: at most about 10 s
            try:
                requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
                              timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None, "anvil exited at start"
                threading.Event().wait(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_single_record_written_past_block_2_to_the_32_minus_256_is_still_found_by_id(
        high_chain: str, tmp_path: Path) -> None:
    account = Account.from_key(DEV_KEY)
    deployment = deploy_suite(high_chain, account, network="test", governors=[account.address], threshold=1)
    chain = ChainClient(high_chain, deployment)
    identity = Identity.from_private_keys(DEV_KEY, {1: generate_x25519_keypair().private_key})
    chain.transact(account, chain.records.functions.registerPatient(), action="register")
    salt, digest = os.urandom(32), os.urandom(32)
    tx = chain.transact(account, chain.records.functions.addRecord(salt, account.address, digest, 1 << 1,
                                                                   b"\x01\x55\x12\x20" + digest), action="add")
    assert tx.block_number > 2**32 - 256
    record_id = record_id_of(account.address, salt)

    reader = EHRClient(ChainClient(high_chain, deployment), LocalStore(tmp_path / "store"), identity,
                       state_dir=tmp_path / "state")
    info = reader.get_record(record_id)

    assert (info.record_id, info.block_number, info.status) == (record_id, tx.block_number, "active")
