"""A test wallet for the browser: `window.ethereum` (EIP-1193) in the page, answered in Python by
eth-account with a known development key. Signatures and transactions are real; the page cannot
tell it from an extension wallet except by `isEhrTestWallet`."""

from __future__ import annotations

import json
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

INIT_SCRIPT = """
(() => {
  const listeners = {};
  window.ethereum = {
    isEhrTestWallet: true,
    async request({ method, params }) {
      const answer = JSON.parse(await window.__ehrTestWallet(method, JSON.stringify(params || [])));
      if (answer.error) {
        const error = new Error(answer.error.message);
        error.code = answer.error.code;
        throw error;
      }
      return answer.result;
    },
    on(event, fn) { (listeners[event] ||= []).push(fn); },
    removeListener(event, fn) { listeners[event] = (listeners[event] || []).filter((f) => f !== fn); },
  };
})();
"""


class TestWallet:
    """Answers the EIP-1193 methods the portal uses; everything else is refused (code 4200)."""

    __test__ = False  # not a pytest class

    def __init__(self, private_key: str, rpc_url: str) -> None:
        self.account = Account.from_key(private_key)
        self.w3 = Web3(Web3.HTTPProvider(rpc_url))
        self.calls: list[str] = []

    @property
    def address(self) -> str:
        return str(self.account.address)

    def handle(self, method: str, params_json: str) -> str:
        self.calls.append(method)
        try:
            result = self._answer(method, json.loads(params_json))
            return json.dumps({"result": result})
        except WalletRefusal as exc:
            return json.dumps({"error": {"code": exc.code, "message": str(exc)}})
        except Exception as exc:  # what a wallet reports for a call the node rejects (e.g. a revert in estimateGas)
            return json.dumps({"error": {"code": -32603, "message": f"{type(exc).__name__}: {exc}"}})

    def _answer(self, method: str, params: list[Any]) -> Any:
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [self.address]
        if method == "eth_chainId":
            return hex(self.w3.eth.chain_id)
        if method == "eth_signTypedData_v4":
            signer, document = params
            if signer.lower() != self.address.lower():
                raise WalletRefusal(4100, f"this wallet holds {self.address}, not {signer}")
            signed = Account.sign_message(encode_typed_data(full_message=json.loads(document)), self.account.key)
            return "0x" + bytes(signed.signature).hex()
        if method == "eth_sendTransaction":
            return self._send(params[0])
        raise WalletRefusal(4200, f"the test wallet does not support {method}")

    def _send(self, tx: dict[str, Any]) -> str:
        if tx.get("from", "").lower() != self.address.lower():
            raise WalletRefusal(4100, f"this wallet holds {self.address}, not {tx.get('from')}")
        base = self.w3.eth.get_block("latest")["baseFeePerGas"]
        built = {
            "from": self.address, "to": Web3.to_checksum_address(tx["to"]), "data": tx.get("data", "0x"),
            "value": int(tx.get("value", "0x0"), 16), "chainId": self.w3.eth.chain_id,
            "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
            "maxPriorityFeePerGas": 1, "maxFeePerGas": 2 * base + 1,
        }
        built["gas"] = int(self.w3.eth.estimate_gas(built) * 1.25)  # reverts surface here, as in a wallet
        signed = self.account.sign_transaction(built)
        return "0x" + bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction)).hex()


class WalletRefusal(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
