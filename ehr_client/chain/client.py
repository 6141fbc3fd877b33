"""web3.py bindings for a deployed suite: calls, transactions, events, and typed failures.

Transactions are signed locally (eth-account) and sent raw, so any JSON-RPC node works and no key
ever leaves the process. Nonces are handed out under a lock per sender and resynchronised from
the node when it disagrees, so threads of one process can send concurrently.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import requests
from eth_abi import encode
from eth_abi.exceptions import EncodingError
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3._utils.method_formatters import log_entry_formatter, receipt_formatter
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    TimeExhausted,
    TransactionIndexingInProgress,
    TransactionNotFound,
)

from ehr_client.chain.abi import load_artifact
from ehr_client.chain.deployment import Deployment
from ehr_client.chain.eip712 import check_domain_name, default_domain_name
from ehr_client.chain.reverts import revert_error
from ehr_client.chain.rpc import FailoverProvider, parse_urls
from ehr_client.chain.txplan import GAS_MARGIN, MIN_PRIORITY_FEE, RpcFailure, answer_of, plan, plan_requests
from ehr_client.errors import ChainMismatch, ChainStalled, ChainUnavailable, NonceDisplaced, TransactionReverted

T = TypeVar("T")

LOG_PAGE_BLOCKS = 5_000
_NONCE_RETRIES = 10
log = logging.getLogger(__name__)
_NONCE_CLASHES = ("nonce", "replacement transaction underpriced", "already known")
_ALREADY_POOLED = ("already known", "already imported")
POLL_BUDGET = 1.0  # seconds: see `_poll_deadline`
_SYNC_SEND_TIMED_OUT = 4  # EIP-7966: added to the pool, not mined within the node's wait


def _is_nonce_clash(message: str) -> bool:
    message = message.lower()
    return any(marker in message for marker in _NONCE_CLASHES)


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    gas_used: int
    logs: tuple[Any, ...]


@dataclass(frozen=True)
class EventRecord:
    """One decoded contract event with where and when it happened."""

    contract: str
    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int


class _SenderLocks:
    """One lock per sender, held from reading the nonce until the node has the transaction.

    The node's pending count is then always the next free nonce for this process; a clash with
    another process using the same key shows up as a nonce error and is retried.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, address: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(address, threading.Lock())


_SELECTORS: dict[str, tuple[bytes, list[str]]] = {}


def _destination(fn: ContractFunction | ContractConstructor) -> tuple[str | None, str]:
    """(to, data) of a call, or (None, creation code and arguments) of a contract creation.

    A call's selector and argument types are worked out once per function signature: web3's
    `_encode_transaction_data` validates and re-resolves the ABI on every call (~0.3 ms)."""
    if isinstance(fn, ContractConstructor):
        return None, str(fn.data_in_transaction)
    if fn.kwargs:
        return str(fn.address), str(fn._encode_transaction_data())
    known = _SELECTORS.get(fn.signature)
    if known is None:
        known = _SELECTORS[fn.signature] = (function_abi_to_4byte_selector(fn.abi), get_abi_input_types(fn.abi))
    selector, types = known
    try:
        return str(fn.address), "0x" + (selector + encode(types, fn.args)).hex()
    except (EncodingError, TypeError, ValueError):  # arguments web3 would first normalise (hex strings, ...)
        return str(fn.address), str(fn._encode_transaction_data())


def _revert_data(exc: ContractLogicError) -> bytes | None:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    return None


class Displacement:
    """Tells when a sent transaction lost its nonce: the sender's mined nonce has passed it while the
    node still knows no receipt, for a whole second (a node may answer a batch's entries in any
    order, so one poll can see the nonce move before the receipt of our own transaction)."""

    GRACE_SECONDS = 1.0

    def __init__(self) -> None:
        self._since: float | None = None

    def seen(self, receipt: Any, mined_nonce: Any, nonce: int) -> bool:
        if receipt is None and isinstance(mined_nonce, str) and int(mined_nonce, 16) > nonce:
            self._since = self._since or time.monotonic()
            return time.monotonic() - self._since >= self.GRACE_SECONDS
        self._since = None
        return False


class ChainClient:
    """The four contracts of one deployment, reached through one or more JSON-RPC nodes.

    `rpc_url` is one URL, several separated by commas, or a list: a node that does not answer is
    left for the next (`ehr_client.chain.rpc`). Every call, retries and failover included, ends
    within `timeout` seconds or raises `ChainUnavailable`. `confirmations` is how many blocks must
    follow a transaction's block before it is reported done (0 on an instant-mining dev node; a
    few on a Clique chain, where short forks can drop the newest blocks).
    """

    def __init__(self, rpc_url: str | Sequence[str], deployment: Deployment, *, timeout: float = 30.0,
                 confirmations: int = 0, request_timeout: float | None = None, check_interval: float = 5.0) -> None:
        self.rpc_urls = parse_urls(rpc_url)
        self.deployment = deployment
        self.timeout = timeout
        self.confirmations = confirmations
        self.check_interval = check_interval
        self.provider = FailoverProvider(self.rpc_urls, request_timeout=request_timeout or min(timeout, 10.0))
        self.provider.cache_allowed_requests = True  # eth_chainId once, not once per transaction
        self.w3 = Web3(self.provider)
        # Clique blocks carry the sealer's signature in extraData (97 bytes); web3 refuses them without
        # this middleware. On other chains it changes nothing.
        self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self.sender_lock = _SenderLocks()
        self._checked_at = 0.0
        self._head_hint: int | None = None  # the latest head seen: lets `get_events` skip a round trip
        self._sync_send = True  # until the node says it has no eth_sendRawTransactionSync
        self.contracts: dict[str, Contract] = {
            name: self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name)["abi"])
            for name, address in deployment.contracts.items()
        }
        self.check_chain()

    @property
    def rpc_url(self) -> str:
        """The node currently in use."""
        return str(self.provider.endpoint_uri)

    def ensure_chain(self) -> None:
        """`check_chain` at most every `check_interval` seconds: cheap enough before every listing and write."""
        self.check_chain(max_age=self.check_interval)

    def check_chain(self, *, max_age: float = 0.0) -> None:
        """Raise `ChainMismatch` unless the node serves the chain the deployment describes: its chain id,
        the suite's code at the deployment's addresses, and (when the file records it) the hash of the
        block RecordRegistry was deployed in. A chain that was reset or replaced is refused here, before
        any list comes back empty. With `max_age`, a check younger than that is not repeated."""
        if max_age and time.monotonic() - self._checked_at < max_age:
            return
        registry = self.contracts["RecordRegistry"].address
        requests_: list[tuple[str, list[Any]]] = [("eth_chainId", []), ("eth_getCode", [registry, "latest"]),
                                                  ("eth_blockNumber", [])]
        marker = self.deployment.registry_block
        if marker is not None:
            requests_.append(("eth_getBlockByNumber", [hex(marker[0]), False]))
        answers = self.rpc(lambda: self.provider.make_batch_request(cast(Any, requests_)))
        if not isinstance(answers, list) or len(answers) != len(requests_):
            raise ChainUnavailable(f"the chain node at {self.rpc_url} refused a JSON-RPC batch; it must support batches")
        results = [a.get("result") if isinstance(a, dict) else None for a in answers]
        if isinstance(results[2], str):
            self._head_hint = int(results[2], 16)
        chain_id = int(str(results[0]), 16) if results[0] else None
        where = f"the node at {self.rpc_url}"
        if chain_id != self.deployment.chain_id:
            raise ChainMismatch(
                f"{where} serves chain {chain_id}, but the deployment file is for chain {self.deployment.chain_id}; "
                "point --rpc at the right node or pick the matching --network"
            )
        if not results[1] or results[1] in ("0x", "0x0"):
            raise ChainMismatch(
                f"{where} has no contract code at the deployment's RecordRegistry {registry}: the chain was reset "
                f"or replaced since {self.deployment.network} was deployed; records acknowledged on it are not on "
                "this chain (`ehr record recover` re-anchors what your journal holds), or redeploy"
            )
        if marker is not None:
            block = results[3]
            if not isinstance(block, dict) or str(block.get("hash")) != marker[1]:
                raise ChainMismatch(
                    f"{where} has another block {marker[0]} than the one the suite was deployed in: this is not the "
                    f"chain {self.deployment.network} was deployed on (reset, or redeployed at the same addresses)"
                )
        self._checked_at = time.monotonic()

    @property
    def consortium(self) -> Contract:
        return self.contracts["Consortium"]

    @property
    def keys(self) -> Contract:
        return self.contracts["KeyRegistry"]

    @property
    def records(self) -> Contract:
        return self.contracts["RecordRegistry"]

    @property
    def consent(self) -> Contract:
        return self.contracts["ConsentManager"]

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    def rpc(self, request: Callable[[], T], *, deadline: float | None = None) -> T:
        """Run `request` (one or more JSON-RPC requests) within the deadline (`timeout` from now, or the
        caller's own `time.monotonic()` deadline), failing over between nodes."""
        deadline = time.monotonic() + self.timeout if deadline is None else deadline
        tried: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                nodes = ", ".join(dict.fromkeys(tried)) or self.rpc_url
                raise ChainUnavailable(
                    f"cannot reach the chain node at {nodes} within {self.timeout:.0f}s; start or unblock it "
                    "(`ehr node up`, `ehr node status`) or fix --rpc"
                )
            node = self.rpc_url
            self.provider.set_budget(remaining)
            try:
                return request()
            except (requests.ConnectionError, requests.Timeout):
                tried.append(node)
                self.provider.failover(node)
                if len(tried) >= 3 * len(self.rpc_urls) and not any(u not in tried for u in self.rpc_urls):
                    time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            except BadFunctionCallOutput:
                self.check_chain()
                raise ChainUnavailable(f"{node} answered a contract call with nothing; retry") from None
            finally:
                self.provider.set_budget(None)

    _rpc = rpc

    def batch(self, requests_: Sequence[tuple[str, list[Any]]], *, deadline: float | None = None) -> list[Any]:
        """Every (method, params) in one round trip; each answer is its result or an `RpcFailure`."""
        if not requests_:
            return []
        responses = self.rpc(lambda: self.provider.make_batch_request(cast(Any, list(requests_))), deadline=deadline)
        if not isinstance(responses, list) or len(responses) != len(requests_):
            raise ChainUnavailable(f"the chain node at {self.rpc_url} refused a JSON-RPC batch; it must support batches")
        return [answer_of(response) for response in cast(list[dict[str, Any]], responses)]

    def call(self, fn: ContractFunction, *, action: str, block: int | str = "latest") -> Any:
        """A view call; reverts become typed errors."""
        try:
            return self._rpc(lambda: fn.call(block_identifier=cast(Any, block)))
        except ContractLogicError as exc:
            raise revert_error(_revert_data(exc), action=action) from None

    def simulate(self, sender: str, fn: ContractFunction, *, action: str) -> int:
        """Run `fn` as `sender` without sending it; returns the gas it needs, or raises the typed
        error its revert would be. Use it to fail before side effects that precede a transaction."""
        try:
            return int(self._rpc(lambda: fn.estimate_gas({"from": sender})))
        except ContractLogicError as exc:
            raise revert_error(_revert_data(exc), action=action) from None

    def transact(self, account: LocalAccount, fn: ContractFunction | ContractConstructor, *, action: str,
                 gas: int | None = None) -> TxResult:
        """Sign and send `fn` from `account`, wait for it to be mined, and return the receipt.

        A revert is raised as a typed error before anything is sent when the node predicts it,
        and after mining otherwise; in both cases nothing took effect. `gas` is what `simulate`
        returned for the same call, if the caller ran it (the estimate is then not asked again).
        Gas, nonce and fees are asked in one round trip, under the sender's lock. A transaction
        whose nonce another one took (`NonceDisplaced`) is planned and sent again.
        """
        for _ in range(_NONCE_RETRIES):
            tx_hash, nonce, receipt = self._send(account, fn, action=action, gas=gas)
            try:
                return self._await(tx_hash, fn, account.address, action=action, nonce=nonce, receipt=receipt)
            except NonceDisplaced as exc:
                log.warning("%s", exc)
                gas = None  # the chain moved on: estimate again (a call that would now revert says so)
        raise NonceDisplaced(f"{action}: other senders using {account.address} took this transaction's nonce "
                             f"{_NONCE_RETRIES} times; nothing was applied, retry later")

    def _send(self, account: LocalAccount, fn: ContractFunction | ContractConstructor, *, action: str,
              gas: int | None) -> tuple[HexBytes, int, Any]:
        sender = account.address
        to, data = _destination(fn)
        known = [] if gas is None else [gas]
        estimates: list[tuple[str | None, str]] = [] if known else [(to, data)]
        for attempt in range(_NONCE_RETRIES):
            with self.sender_lock(sender):
                prepared = plan(len(estimates), self.batch(plan_requests(sender, estimates)), action=action,
                                known_gas=known)
                tx = {"data": data, "value": 0, "gas": prepared.gas[0], "nonce": prepared.nonce,
                      "chainId": self.chain_id, **prepared.fees, **({} if to is None else {"to": to})}
                signed = account.sign_transaction(cast(Any, tx))
                sent, receipt = self.send_raw(signed.raw_transaction, mined_on_send=prepared.mined_on_send)
                if not isinstance(sent, RpcFailure):
                    return sent, prepared.nonce, receipt
                if not _is_nonce_clash(sent.message):
                    raise TransactionReverted(f"{action} failed: the node refused the transaction ({sent.message})")
            # Another process sending from the same account took this nonce: back off, outside the lock.
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise ChainUnavailable(
            f"{action}: {_NONCE_RETRIES} attempts lost the race for the next nonce of {sender} to other "
            "senders using the same account; nothing was sent, retry later"
        )

    def send_raw(self, raw: bytes, *, mined_on_send: bool = False) -> tuple[HexBytes | RpcFailure, Any]:
        """Hand a signed transaction to the node: (its hash or the node's refusal, its formatted receipt
        or None: poll for it). See `send_raws`."""
        return self.send_raws([raw], mined_on_send=mined_on_send)[0]

    def send_raws(self, raws: Sequence[bytes], *, mined_on_send: bool = False) -> list[tuple[HexBytes | RpcFailure, Any]]:
        """Signed transactions handed to the node in one round trip: for each, (its hash or the node's
        refusal, its formatted receipt or None: poll for it). `mined_on_send` (the node mines each
        transaction as it arrives, as `Prepared` says): `eth_sendRawTransactionSync` (EIP-7966) answers
        with the receipt, saving the round trips that poll for it; a node without the method is asked
        the plain way, and not asked again."""
        if mined_on_send and self._sync_send:
            answers = self.batch([("eth_sendRawTransactionSync", ["0x" + raw.hex()]) for raw in raws])
            if not any(isinstance(a, RpcFailure) and a.code == -32601 for a in answers):
                return [_sync_outcome(answer, HexBytes(keccak(raw))) for answer, raw in zip(answers, raws, strict=True)]
            self._sync_send = False  # the node has no such method: nothing was sent
        sent = self.batch([("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in raws])
        return [((a if isinstance(a, RpcFailure) else HexBytes(str(a))), None) for a in sent]

    def _await(self, tx_hash: HexBytes, fn: ContractFunction | ContractConstructor, sender: str, *, action: str,
               nonce: int | None = None, receipt: Any = None) -> TxResult:
        if receipt is None:
            receipt = self._receipt(tx_hash, action=action, sender=sender, nonce=nonce)
        if receipt["status"] == 1:
            receipt = self.confirm(receipt, action=action, sender=sender, nonce=nonce)
        if receipt["status"] != 1:
            block = receipt["blockNumber"]
            try:
                if isinstance(fn, ContractConstructor):
                    self.w3.eth.call(cast(Any, {"from": sender, "data": _destination(fn)[1]}), block_identifier=block - 1)
                else:
                    fn.call({"from": sender}, block_identifier=block - 1)
            except ContractLogicError as exc:
                raise revert_error(_revert_data(exc), action=action) from None
            raise TransactionReverted(f"{action} failed: transaction {tx_hash.to_0x_hex()} reverted")
        return TxResult(
            tx_hash=tx_hash.to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            logs=tuple(receipt["logs"]),
        )

    def _receipt(self, tx_hash: HexBytes, *, action: str, sender: str | None = None, nonce: int | None = None) -> Any:
        """The receipt of a sent transaction, polled every 20 ms until it is mined or `timeout` passes.

        With `sender` and `nonce`, each poll also asks for the sender's mined nonce: past ours while
        our transaction stays unknown, another transaction took the nonce (`NonceDisplaced`).
        """
        deadline = time.monotonic() + self.timeout
        watch = sender is not None and nonce is not None
        displaced = Displacement()
        while True:
            requests: list[tuple[str, list[Any]]] = [("eth_getTransactionReceipt", [tx_hash.to_0x_hex()])]
            if watch:
                requests.append(("eth_getTransactionCount", [sender, "latest"]))
            answers = self.batch(requests, deadline=_poll_deadline(deadline))
            if isinstance(answers[0], dict):
                return receipt_formatter(answers[0])
            if watch and displaced.seen(answers[0], answers[1], cast(int, nonce)):
                raise NonceDisplaced(f"{action}: transaction {tx_hash.to_0x_hex()} lost its nonce {nonce} to "
                                     f"another transaction from {sender}; nothing of it was applied")
            if time.monotonic() + 0.02 >= deadline:
                raise ChainUnavailable(
                    f"{action}: transaction {tx_hash.to_0x_hex()} was not mined within {self.timeout:.0f}s; "
                    "check that the node is producing blocks, then look the hash up before retrying"
                )
            time.sleep(0.02)

    def confirm(self, receipt: Any, *, action: str, sender: str | None = None, nonce: int | None = None) -> Any:
        """The receipt once `confirmations` blocks follow its block on the node's canonical chain.

        On a chain with short forks (Clique) the newest blocks can be replaced: the transaction is
        then looked up again until it sits `confirmations` deep, or the deadline passes. With
        `sender` and `nonce`, a transaction whose nonce another one took on the chain that won
        raises `NonceDisplaced` (it can never be mined again).
        """
        if self.confirmations <= 0:
            return receipt
        tx_hash = receipt["transactionHash"]
        deadline = time.monotonic() + self.timeout
        watch = sender is not None and nonce is not None
        displaced = Displacement()
        while time.monotonic() < deadline:
            requests: list[tuple[str, list[Any]]] = [("eth_blockNumber", []),
                                                     ("eth_getTransactionReceipt", [tx_hash.to_0x_hex()])]
            if watch:
                requests.append(("eth_getTransactionCount", [sender, "latest"]))
            answers = self.batch(requests, deadline=_poll_deadline(deadline))
            current = receipt_formatter(answers[1]) if isinstance(answers[1], dict) else None
            if current is not None:
                if current["blockHash"] != receipt["blockHash"]:
                    receipt = current  # re-mined in another block: count from there
                elif isinstance(answers[0], str) and int(answers[0], 16) >= int(receipt["blockNumber"]) + self.confirmations:
                    return current
            if watch and displaced.seen(answers[1], answers[2], cast(int, nonce)):
                raise NonceDisplaced(f"{action}: transaction {tx_hash.to_0x_hex()} was mined in a block a fork "
                                     f"replaced, and another transaction from {sender} took its nonce {nonce} on "
                                     "the chain that won; nothing of it was applied")
            time.sleep(0.05)
        raise ChainUnavailable(
            f"{action}: transaction {tx_hash.to_0x_hex()} was mined but not {self.confirmations} blocks deep within "
            f"{self.timeout:.0f}s; check that the validators are producing blocks, then look the hash up"
        )

    def events_in(self, result: TxResult, contract: str, event: str) -> list[dict[str, Any]]:
        """Decoded `event`s of `contract` emitted by one mined transaction."""
        decoder = self.contracts[contract].events[event]()
        address = self.contracts[contract].address
        topic = HexBytes(decoder.topic)
        decoded = []
        for log in result.logs:
            if log["address"] == address and log["topics"] and HexBytes(log["topics"][0]) == topic:
                decoded.append(dict(decoder.process_log(log)["args"]))
        return decoded

    def get_events(
        self,
        contract: str,
        event: str,
        *,
        filters: dict[str, Any] | None = None,
        from_block: int | None = None,
        to_block: int | None = None,
    ) -> list[EventRecord]:
        """Every `event` matching `filters` (indexed arguments), oldest first, paged by block range."""
        return self.get_events_with(contract, event, filters=filters, from_block=from_block, to_block=to_block)[0]

    def get_events_with(
        self,
        contract: str,
        event: str,
        *,
        filters: dict[str, Any] | None = None,
        from_block: int | None = None,
        to_block: int | None = None,
        extra: Sequence[tuple[str, list[Any]]] = (),
    ) -> tuple[list[EventRecord], list[Any]]:
        """`get_events`, and the answers to `extra` requests (results or `RpcFailure`s) asked alongside.

        When the last head this client saw is well within one page of `from_block`, the head and
        the logs up to it are asked in one round trip; logs that carry their block's timestamp
        (Anvil, recent geth) need no block lookups."""
        start = self.deployment.deploy_block if from_block is None else from_block
        handle = self.contracts[contract].events[event]
        abi = handle.abi

        def params(s: int, e: int | str) -> dict[str, Any]:
            found = dict(handle._get_event_filter_params(abi, argument_filters=filters or {}, from_block=s,
                                                         to_block=e))
            return {k: hex(v) if isinstance(v, int) else v for k, v in found.items()}

        raw: list[Any] | None = None
        end = to_block
        extras: list[Any] | None = None
        if to_block is None and self._head_hint is not None and self._head_hint - start < LOG_PAGE_BLOCKS // 2:
            head, logs, *extras = self.batch([("eth_blockNumber", []), ("eth_getLogs", [params(start, "latest")]),
                                              *extra])
            if isinstance(head, str):
                end = self._head_hint = int(head, 16)
                if end - start < LOG_PAGE_BLOCKS and isinstance(logs, list):
                    raw = logs
        if extras is None:
            extras = self.batch(extra)
        if raw is None:
            if end is None:
                end = self.head()
            raw = []
            for page_start, page_end in iter_pages(start, end):
                answer = self.batch([("eth_getLogs", [params(page_start, page_end)])])[0]
                if not isinstance(answer, list):
                    raise ChainUnavailable(f"the chain node at {self.rpc_url} did not answer a log query "
                                           f"({getattr(answer, 'message', answer)}); retry or check the node")
                raw.extend(answer)
        formatted = [log_entry_formatter(log) for log in raw]
        times = {int(log["blockNumber"]): int(str(r["blockTimestamp"]), 16)
                 for r, log in zip(raw, formatted, strict=True) if r.get("blockTimestamp")}
        times.update(self.block_timestamps({log["blockNumber"] for log in formatted} - set(times)))
        out = []
        for log in formatted:
            decoded_log = handle.process_log(log)
            out.append(EventRecord(
                contract=contract,
                name=event,
                args=dict(decoded_log["args"]),
                block_number=int(log["blockNumber"]),
                log_index=int(log["logIndex"]),
                tx_hash=log["transactionHash"].to_0x_hex(),
                timestamp=times[log["blockNumber"]],
            ))
        return out, extras

    def block_timestamps(self, numbers: set[int]) -> dict[int, int]:
        """Timestamps of many blocks in one batched round trip."""
        ordered = sorted(numbers)
        if not ordered:
            return {}

        def fetch() -> list[Any]:
            with self.w3.batch_requests() as batch:
                for number in ordered:
                    batch.add(self.w3.eth.get_block(number))
                return list(batch.execute())

        blocks = self._rpc(fetch)
        return {number: int(block["timestamp"]) for number, block in zip(ordered, blocks, strict=True)}

    def batch_call(self, calls: Sequence[ContractFunction], *, action: str) -> list[Any]:
        """Many view calls in one JSON-RPC batch (one round trip)."""
        if not calls:
            return []

        def fetch() -> list[Any]:
            with self.w3.batch_requests() as batch:
                for fn in calls:
                    batch.add(fn)
                return list(batch.execute())

        try:
            return self._rpc(fetch)
        except ContractLogicError as exc:
            raise revert_error(_revert_data(exc), action=action) from None

    def head(self) -> int:
        """The latest block number."""
        self._head_hint = int(self._rpc(lambda: self.w3.eth.block_number))
        return self._head_hint

    def settled(self, block_number: int) -> bool:
        """Whether `block_number` was `confirmations` deep at the latest head this client saw."""
        return self._head_hint is not None and block_number <= self._head_hint - self.confirmations

    def now(self) -> int:
        """The latest block's timestamp: the chain's idea of the current time."""
        return int(self._rpc(lambda: self.w3.eth.get_block("latest"))["timestamp"])


def _poll_deadline(deadline: float) -> float:
    """The deadline of one poll while waiting for a transaction: at least `POLL_BUDGET` from now, so
    the last poll before the wait's deadline still gets its answer and the caller hears "not mined
    within the timeout" from a node that answers, not "cannot reach the node" (seen under load)."""
    return max(deadline, time.monotonic() + POLL_BUDGET)


def _sync_outcome(answer: Any, tx_hash: HexBytes) -> tuple[HexBytes | RpcFailure, Any]:
    if isinstance(answer, dict):
        return tx_hash, receipt_formatter(answer)
    if not isinstance(answer, RpcFailure):
        return tx_hash, None
    if answer.code == _SYNC_SEND_TIMED_OUT or any(m in answer.message.lower() for m in _ALREADY_POOLED):
        return tx_hash, None  # in the pool (a retried request finds its own transaction there): poll
    return answer, None


def iter_pages(start: int, end: int, size: int = LOG_PAGE_BLOCKS) -> Iterator[tuple[int, int]]:
    """Inclusive block ranges of at most `size` blocks covering start..end."""
    for page_start in range(start, end + 1, size):
        yield page_start, min(page_start + size - 1, end)


def settled_block(w3: Web3, tx_hash: HexBytes, confirmations: int, timeout: float) -> tuple[int, str]:
    """The canonical block holding `tx_hash` once `confirmations` blocks follow it (a reorganisation
    may have moved the transaction to another block, or back to the pool for a while)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            receipt = w3.eth.get_transaction_receipt(tx_hash)
            number, block_hash = int(receipt["blockNumber"]), receipt["blockHash"]
            if w3.eth.block_number >= number + confirmations and w3.eth.get_block(number)["hash"] == block_hash:
                return number, block_hash.to_0x_hex()
        except (TransactionNotFound, TransactionIndexingInProgress):
            pass
        if time.monotonic() >= deadline:
            raise ChainStalled(f"the deployment's transaction {tx_hash.to_0x_hex()} did not get {confirmations} "
                               f"confirmations within {timeout:.0f}s; is the chain producing blocks?")
        time.sleep(0.2)


def deploy_suite(
    rpc_url: str,
    account: LocalAccount,
    *,
    network: str,
    governors: Sequence[str],
    threshold: int,
    timeout: float = 30.0,
    consent_name: str | None = None,
    confirmations: int = 0,
) -> Deployment:
    """Deploy Consortium, KeyRegistry and RecordRegistry (which creates ConsentManager, whose EIP-712
    domain is named `consent_name`, by default after the network).

    The deployment names the block that holds RecordRegistry, and clients refuse a chain without
    it. On a chain that can reorganise (Clique), pass `confirmations`: the block is read once that
    many blocks follow it, so a short fork cannot leave the file naming a block that lost.
    """
    consent_name = check_domain_name(consent_name or default_domain_name(network))
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)  # Clique blocks: see ChainClient
    try:
        chain_id = w3.eth.chain_id
        deploy_block = w3.eth.block_number + 1
    except (requests.ConnectionError, requests.Timeout):
        raise ChainUnavailable(f"cannot reach the chain node at {rpc_url}; start it or fix --rpc") from None

    blocks: dict[str, tuple[int, str]] = {}
    sent: dict[str, HexBytes] = {}

    def create(name: str, *args: Any) -> str:
        artifact = load_artifact(name)
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        constructor = factory.constructor(*args)
        try:
            gas = constructor.estimate_gas({"from": account.address})
        except ContractLogicError as exc:
            raise revert_error(_revert_data(exc), action=f"deploy {name}") from None
        tip = max(w3.eth.max_priority_fee, MIN_PRIORITY_FEE)
        base = w3.eth.get_block("latest").get("baseFeePerGas")
        fees = {"gasPrice": 0} if base is None else {"maxPriorityFeePerGas": tip, "maxFeePerGas": tip + 2 * base}
        tx = constructor.build_transaction(
            {
                "from": account.address,
                "nonce": w3.eth.get_transaction_count(account.address, "pending"),
                "gas": int(gas * GAS_MARGIN),
                "chainId": chain_id,
                **fees,  # type: ignore[typeddict-item]
            }
        )
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        try:
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.02)
        except TimeExhausted:
            raise ChainStalled(f"deploying {name}: transaction {tx_hash.to_0x_hex()} was not mined within "
                               f"{timeout:.0f}s; check that the chain produces blocks and that the node at "
                               f"{rpc_url} has peers, then deploy again (nothing that follows was sent)") from None
        if receipt["status"] != 1 or not receipt["contractAddress"]:
            raise TransactionReverted(f"deploying {name} reverted (transaction {tx_hash.to_0x_hex()})")
        blocks[name] = (int(receipt["blockNumber"]), receipt["blockHash"].to_0x_hex())
        sent[name] = HexBytes(tx_hash)
        return str(receipt["contractAddress"])

    checksummed = [Web3.to_checksum_address(g) for g in governors]
    consortium = create("Consortium", checksummed, threshold)
    keys = create("KeyRegistry")
    records = create("RecordRegistry", consortium, consent_name)
    if confirmations > 0:
        blocks["RecordRegistry"] = settled_block(w3, sent["RecordRegistry"], confirmations, timeout)
    registry = w3.eth.contract(address=Web3.to_checksum_address(records), abi=load_artifact("RecordRegistry")["abi"])
    consent = str(registry.functions.consentManager().call())
    return Deployment(
        network=network,
        chain_id=chain_id,
        deploy_block=deploy_block,
        deployer=account.address,
        contracts={"Consortium": consortium, "KeyRegistry": keys, "RecordRegistry": records, "ConsentManager": consent},
        governors=[str(g) for g in checksummed],
        threshold=threshold,
        registry_block_number=blocks["RecordRegistry"][0],
        registry_block_hash=blocks["RecordRegistry"][1],
    )


