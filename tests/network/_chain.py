"""Raw transactions on a geth network, signed locally, with deadlines that end in typed errors."""

from __future__ import annotations

import time
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionIndexingInProgress, TransactionNotFound
from web3.middleware import ExtraDataToPOAMiddleware

from ehr_client.errors import ChainStalled
from ehr_client.dev.node import DEV_MNEMONIC

SINK = "0x000000000000000000000000000000000000dEaD"


def dev_account(index: int) -> LocalAccount:
    """An account of the development mnemonic (also Ape's TEST:: accounts); the networks fund 0..5."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def web3(url: str) -> Web3:
    """A Web3 for a Clique chain: its extraData (vanity + signature, 97 bytes) needs the POA middleware."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 10}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def send(w3: Web3, sender: LocalAccount, tx: dict[str, Any]) -> HexBytes:
    """Sign and send `tx` (value transfer to SINK unless `to`/`data` say otherwise)."""
    full = {"to": SINK, "value": 1, "chainId": w3.eth.chain_id, "gas": 100_000,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9, **tx}
    return HexBytes(w3.eth.send_raw_transaction(sender.sign_transaction(full).raw_transaction))


def wait_receipt(w3: Web3, tx_hash: HexBytes, *, timeout: float) -> Any:
    """The receipt, or ChainStalled once `timeout` seconds pass without inclusion.

    geth answers "transaction indexing is in progress" for a while after it starts: not yet, too.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return w3.eth.get_transaction_receipt(tx_hash)
        except (TransactionNotFound, TransactionIndexingInProgress):
            pass
        if time.monotonic() >= deadline:
            raise ChainStalled(f"transaction {tx_hash.hex()} not included within {timeout:.0f}s")
        time.sleep(0.1)
