"""What an attacker needs beyond the public API: raw contract creation with hand-written init code."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ehr_client.chain.client import ChainClient


def mapping_slot(key: bytes, slot: int) -> int:
    """Storage slot of `mapping[key]` for a mapping declared at `slot` (Solidity layout)."""
    return int.from_bytes(keccak(key.rjust(32, b"\0") + slot.to_bytes(32, "big")), "big")


def init_code(runtime: bytes, stores: dict[int, int]) -> bytes:
    """Creation code that writes `stores` (slot -> value) into its own storage, then leaves `runtime`
    as the contract's code: the deployed code is exactly `runtime`, the storage is whatever we chose."""
    prefix = b"".join(b"\x7f" + value.to_bytes(32, "big") + b"\x7f" + slot.to_bytes(32, "big") + b"\x55"
                      for slot, value in stores.items())
    tail_len = 3 + 3 + 2 + 1 + 3 + 2 + 1  # PUSH2 len, PUSH2 off, PUSH1 0, CODECOPY, PUSH2 len, PUSH1 0, RETURN
    offset = len(prefix) + tail_len
    n = len(runtime).to_bytes(2, "big")
    tail = (b"\x61" + n + b"\x61" + offset.to_bytes(2, "big") + b"\x60\x00\x39"
            + b"\x61" + n + b"\x60\x00\xf3")
    assert len(tail) == tail_len
    return prefix + tail + runtime


def create(chain: ChainClient, account: LocalAccount, code: bytes) -> str:
    """Send a raw contract creation signed by `account`; the new contract's address."""
    return create_tx(chain, account, code)[0]


def create_tx(chain: ChainClient, account: LocalAccount, code: bytes) -> tuple[str, str]:
    """`create`, with the creating transaction's hash."""
    w3 = chain.w3
    tx = {"from": account.address, "data": "0x" + code.hex(), "nonce": w3.eth.get_transaction_count(account.address),
          "chainId": w3.eth.chain_id, "gas": 6_000_000, "maxFeePerGas": w3.eth.gas_price * 2 + 10**9,
          "maxPriorityFeePerGas": 10**9}
    signed = account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt["status"] == 1 and receipt["contractAddress"]
    return str(receipt["contractAddress"]), receipt["transactionHash"].to_0x_hex()
