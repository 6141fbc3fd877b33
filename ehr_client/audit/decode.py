"""Decode raw logs of every watched contract by (address, topic) and transaction inputs by
selector, with eth_abi directly (web3's per-log processing is about ten times slower).

`ContractSource` is the extension point for contracts beyond the four of a deployment (for
example a key-release contract for custodians): give its name, address and ABI, and register how
its events read in an audit trail with :func:`ehr_client.audit.facts.register_event`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak, to_checksum_address

from ehr_client.audit._rpc import quantity
from ehr_client.chain.abi import load_artifact
from ehr_client.chain.deployment import Deployment


@dataclass(frozen=True)
class ContractSource:
    """One contract whose events and transactions the audit index follows."""

    name: str
    address: str
    abi: Sequence[Mapping[str, Any]] = field(repr=False)


def deployment_sources(deployment: Deployment) -> list[ContractSource]:
    """The four contracts of a deployment, with the ABIs this client ships."""
    return [
        ContractSource(name, to_checksum_address(address), load_artifact(name)["abi"])
        for name, address in deployment.contracts.items()
    ]


@dataclass(frozen=True)
class DecodedLog:
    contract: str
    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int


@dataclass(frozen=True)
class DecodedCall:
    contract: str
    function: str
    args: dict[str, Any]


def plain(value: Any) -> Any:
    """A JSON-ready form of a decoded ABI value: bytes as 0x-hex, tuples as lists."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    return str(value)


def _type(arg: Mapping[str, Any]) -> str:
    kind = str(arg["type"])
    if kind.startswith("tuple"):
        return f"({','.join(_type(c) for c in arg['components'])}){kind[5:]}"
    return kind


def _value(kind: str, value: Any) -> Any:
    if kind == "address":
        return to_checksum_address(value)
    if kind == "address[]":
        return [to_checksum_address(v) for v in value]
    return plain(value)


_DYNAMIC = ("string", "bytes")


def _dynamic(kind: str) -> bool:
    return kind in _DYNAMIC or kind.endswith("]") or kind.startswith("(")


@dataclass(frozen=True)
class _Event:
    contract: str
    name: str
    inputs: tuple[tuple[str, str, bool], ...]  # (name, type, indexed) in ABI order

    def decode(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        indexed = [(n, t) for n, t, i in self.inputs if i]
        plain_inputs = [(n, t) for n, t, i in self.inputs if not i]
        values: dict[str, Any] = {}
        for (name, kind), topic in zip(indexed, topics[1:], strict=True):
            raw = bytes.fromhex(topic[2:])
            # An indexed dynamic value is stored as its hash: keep the hash.
            values[name] = "0x" + raw.hex() if _dynamic(kind) else _value(kind, decode([kind], raw)[0])
        decoded = decode([t for _, t in plain_inputs], bytes.fromhex(data[2:])) if plain_inputs else ()
        for (name, kind), value in zip(plain_inputs, decoded, strict=True):
            values[name] = _value(kind, value)
        return {name: values[name] for name, _, _ in self.inputs}


class Decoder:
    """Events and function calls of a set of contracts, looked up by address."""

    def __init__(self, sources: Iterable[ContractSource]) -> None:
        self.sources = list(sources)
        self._names: dict[str, str] = {}
        self._events: dict[tuple[str, str], _Event] = {}
        self._functions: dict[tuple[str, bytes], tuple[str, list[str], list[str]]] = {}
        for source in self.sources:
            address = source.address.lower()
            self._names[address] = source.name
            for item in source.abi:
                inputs = list(item.get("inputs", []))
                types = [_type(arg) for arg in inputs]
                signature = f"{item.get('name')}({','.join(types)})"
                if item.get("type") == "event" and not item.get("anonymous"):
                    topic = "0x" + keccak(text=signature).hex()
                    self._events[(address, topic)] = _Event(
                        source.name, str(item["name"]),
                        tuple((str(a["name"]), t, bool(a.get("indexed"))) for a, t in zip(inputs, types, strict=True)))
                elif item.get("type") == "function":
                    self._functions[(address, keccak(text=signature)[:4])] = (
                        str(item["name"]), [str(a["name"]) for a in inputs], types)

    @property
    def addresses(self) -> list[str]:
        return [to_checksum_address(a) for a in self._names]

    def contract_name(self, address: str | None) -> str | None:
        return self._names.get(address.lower()) if address else None

    def decode_log(self, log: Mapping[str, Any]) -> DecodedLog | None:
        """The decoded event of a raw JSON-RPC log, or None for a log without an ABI entry here."""
        topics = [str(t).lower() for t in log["topics"]]
        event = self._events.get((str(log["address"]).lower(), topics[0])) if topics else None
        if event is None:
            return None
        try:
            args = event.decode(topics, str(log["data"]))
        except (DecodingError, ValueError):
            return None
        return DecodedLog(
            contract=event.contract, name=event.name, args=args, block_number=quantity(log["blockNumber"]),
            block_hash=str(log["blockHash"]).lower(), tx_hash=str(log["transactionHash"]).lower(),
            tx_index=quantity(log["transactionIndex"]), log_index=quantity(log["logIndex"]))

    def decode_call(self, to: str, data: str) -> DecodedCall | None:
        """The function and arguments of a call to a watched contract (None when not watched)."""
        name = self._names.get(to.lower())
        if name is None:
            return None
        raw = bytes.fromhex(data[2:]) if data.startswith("0x") else bytes.fromhex(data)
        entry = self._functions.get((to.lower(), raw[:4]))
        if entry is None:
            return DecodedCall(name, "unknown", {})
        function, names, types = entry
        try:
            values = decode(types, raw[4:])
        except (DecodingError, ValueError):
            return DecodedCall(name, function, {})
        return DecodedCall(name, function, {n: _value(t, v) for n, t, v in zip(names, types, values, strict=True)})
