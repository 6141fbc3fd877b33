"""Transactions mined at an exact block time, for tests that check time rules to the second.

`ChainClient.transact` asks the node for a gas estimate first, and Anvil evaluates that estimate at
the latest block's time, one second or more before the block the transaction lands in; a rule
that flips at that very second (an expiry, a deadline) would then be judged at two different
times. Here the gas limit is fixed, the next block's timestamp is set, and a revert is named
from the mined transaction's call trace, so every outcome belongs to exactly one timestamp.
"""

from __future__ import annotations

from typing import Any, cast

from eth_account.signers.local import LocalAccount
from web3.contract.contract import ContractFunction
from web3.types import RPCEndpoint, TxParams

from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.chain.reverts import decode_revert

GAS_LIMIT = 1_000_000
MAX_FEE = 100 * 10**9
PRIORITY_FEE = 10**9


class ExactSender:
    """Send `fn` so it is mined in a block whose timestamp is exactly `at`."""

    def __init__(self, client: ChainClient, ape_chain: Any) -> None:
        self.client = client
        self.ape_chain = ape_chain

    def send(self, account: LocalAccount, fn: ContractFunction, *, at: int) -> tuple[TxResult | None, str | None]:
        """(the mined transaction, None) on success; (None, custom error name) on revert."""
        w3 = self.client.w3
        self.ape_chain.pending_timestamp = at
        tx = fn.build_transaction(cast(TxParams, {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "gas": GAS_LIMIT,
            "chainId": self.client.chain_id,
            "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": PRIORITY_FEE,
        }))
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(cast(Any, tx)).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
        mined_at = int(w3.eth.get_block(receipt["blockNumber"])["timestamp"])
        if mined_at != at:
            raise AssertionError(f"transaction mined at {mined_at}, not at the time set ({at})")
        if receipt["status"] == 1:
            return TxResult(tx_hash.to_0x_hex(), int(receipt["blockNumber"]), int(receipt["gasUsed"]),
                            tuple(receipt["logs"])), None
        trace: Any = w3.provider.make_request(RPCEndpoint("debug_traceTransaction"),
                                              [tx_hash.to_0x_hex(), {"tracer": "callTracer"}])
        output = str((trace.get("result") or {}).get("output") or "0x")
        decoded = decode_revert(bytes.fromhex(output[2:])) if len(output) >= 10 else None
        return None, decoded[0] if decoded else f"unknown revert ({output[:10]})"
