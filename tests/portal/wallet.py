"""A test wallet for the browser: `window.ethereum` (EIP-1193) in the page, answered in Python by
eth-account with a known development key. Signatures and transactions are real; the page cannot
tell it from an extension wallet except by `isEhrTestWallet`."""

from __future__ import annotations

import json
import secrets
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.backends.native.jacobian import fast_multiply, inv
from eth_keys.constants import SECPK1_G, SECPK1_N
from eth_utils import keccak
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

    def __init__(self, private_key: str, rpc_url: str, *, random_nonces: bool = False) -> None:
        self.account = Account.from_key(private_key)
        self.random_nonces = random_nonces  # sign typed data like a wallet without RFC 6979
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
            message = encode_typed_data(full_message=json.loads(document))
            if self.random_nonces:
                digest = keccak(b"\x19" + message.version + message.header + message.body)
                return "0x" + sign_with_random_nonce(digest, bytes(self.account.key)).hex()
            signed = Account.sign_message(message, self.account.key)
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


def sign_with_random_nonce(digest: bytes, private_key: bytes) -> bytes:
    """A valid, canonical (low-s) secp256k1 signature r || s || v with a fresh random nonce: what a
    wallet that does not follow RFC 6979 returns, different on every call."""
    z, d = int.from_bytes(digest, "big"), int.from_bytes(private_key, "big")
    while True:
        k = secrets.randbelow(SECPK1_N - 1) + 1
        x, y = fast_multiply(SECPK1_G, k)
        r = x % SECPK1_N
        s = inv(k, SECPK1_N) * (z + r * d) % SECPK1_N
        if r and s:
            break
    parity = y % 2
    if s > SECPK1_N // 2:
        s, parity = SECPK1_N - s, parity ^ 1
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + parity])


class WalletRefusal(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
