"""Typed calls to ClaimRegistry, and its deployment with the verifier of one ceremony."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3Exception
from web3.contract import Contract

from ehr_client.chain.abi import load_artifact
from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.claims.predicate import Predicate
from ehr_client.claims.prover import Groth16Proof
from ehr_client.claims.ceremony import Ceremony
from ehr_client.claims.setup import ClaimSetup
from ehr_client.client.model import BatchProof
from ehr_client.errors import ClaimNotAvailable, ClaimProofRejected, EHRError, IntegrityError, TransactionReverted

@dataclass(frozen=True)
class CheckedClaim:
    """A proof the chain accepted: whose record it is and the id of the predicate it proves."""

    patient: str
    predicate_id: bytes


class ClaimRegistry:
    def __init__(self, chain: ChainClient, address: str) -> None:
        self.chain = chain
        self.contract: Contract = chain.w3.eth.contract(address=Web3.to_checksum_address(address),
                                                        abi=load_artifact("ClaimRegistry")["abi"])

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def commitment_of(self, record_id: bytes) -> int:
        return int(self.chain.call(self.contract.functions.commitmentOf(record_id), action="look up a claim"))

    def binding_of(self, verifier: str, challenge: bytes) -> int:
        return int(self.chain.call(self.contract.functions.bindingOf(Web3.to_checksum_address(verifier), challenge),
                                   action="bind a proof to its verifier"))

    def commit(self, account: LocalAccount, salt: bytes, commitment: int) -> TxResult:
        return self.chain.transact(account, self.contract.functions.commitClaims(salt, commitment),
                                   action="commit claims")

    def commit_batched(self, account: LocalAccount, batch: BatchProof, commitment: int) -> TxResult:
        return self.chain.transact(account, self.contract.functions.commitBatchedClaims(batch.as_arg(), commitment),
                                   action="commit claims of a batched record")

    def check(self, record_id: bytes, verifier: str, challenge: bytes, predicate: Predicate,
              proof: Groth16Proof) -> CheckedClaim:
        fn = self.contract.functions.checkClaim(record_id, Web3.to_checksum_address(verifier), challenge,
                                                predicate.as_struct(), proof.as_struct())
        try:
            patient, predicate_id = self.chain.call(fn, action="check a claim proof")
        except EHRError as exc:
            raise _typed(exc) from None
        return CheckedClaim(str(patient), bytes(predicate_id))

    def record(self, account: LocalAccount, record_id: bytes, challenge: bytes, predicate: Predicate,
               proof: Groth16Proof) -> TxResult:
        fn = self.contract.functions.proveClaim(record_id, challenge, predicate.as_struct(), proof.as_struct())
        try:
            return self.chain.transact(account, fn, action="record a claim proof")
        except EHRError as exc:
            raise _typed(exc) from None


def _typed(exc: EHRError) -> EHRError:
    """Reverts of a proof check as claim errors; the message names no claim content."""
    name = getattr(exc, "error_name", None)
    if name == "ClaimInvalidProof":
        return ClaimProofRejected("the chain rejects this proof: it was made for another record, verifier, challenge "
                                  "or predicate, or it was altered. Ask the patient for a proof made for you")
    if name == "ClaimKindOutOfScope":
        return ClaimProofRejected("the chain refuses this proof: its kind of claim cannot come from a record of this "
                                  "category, so the record's author did not attest it")
    if name == "ClaimRecordNotActive":
        return ClaimProofRejected("the record this proof is about was amended or erased; a proof counts only for "
                                  "a record's current version. Ask the patient for a proof about the current one")
    if name in ("ClaimRecordNotFound", "ClaimNotCommitted"):
        return ClaimNotAvailable("the chain holds no claim commitment for this record (wrong network, or the "
                                 "record carries no claims); check --network and the record id")
    return exc


@dataclass(frozen=True)
class RegistryCheck:
    """A claim registry found to verify with one setup: its verifier and the setup's members."""

    registry: str
    verifier: str
    members: tuple[str, ...]


def check_claim_registry(chain: ChainClient, address: str, setup: ClaimSetup, *,
                         creation_tx: str | None = None) -> RegistryCheck:
    """Whether the claim registry at `address` verifies proofs with `setup`'s verifier over this
    deployment's RecordRegistry, so a verifier can trust the ceremony it audited: the setup is
    verified against its transcript (`verify_setup`), its verifier rebuilt from the final zkey, and
    the code at the registry and at its verifier compared byte for byte with what deploying them
    would create now (the node runs each creation code in a call), and the registry's creation
    transaction (`creation_tx`, which `ehr claim deploy` records in the deployment file; without it,
    found on a node that keeps old state) is checked to carry exactly our creation code and
    arguments. IntegrityError when not."""
    registry = ClaimRegistry(chain, address)
    if not chain.rpc(lambda: chain.w3.eth.get_code(registry.contract.address)):
        raise IntegrityError(f"no contract at {registry.address}: this is not a claim registry on this chain")
    verifier = str(chain.call(registry.contract.functions.verifier(), action="read the registry's verifier"))
    artifact = setup.verifier_artifact()
    if _deployed_code(chain, verifier) != _created_code(chain, artifact, ()):
        raise IntegrityError(f"the claim registry at {registry.address} verifies with {verifier}, which is not the "
                             f"verifier of the setup in {setup.directory}: proofs it accepts owe nothing to that "
                             "ceremony. Do not trust its ClaimProven events")
    # The registry keeps state (commitments), so equal runtime code is not enough: a constructor of
    # the attacker's could have stored commitments. Its creation must be exactly ours.
    expected = _creation_data(chain, load_artifact("ClaimRegistry"), (chain.records.address, verifier))
    found = (_recorded_creation(chain, registry.address, creation_tx) if creation_tx is not None
             else _creation_input(chain, registry.address))
    if found != expected:
        raise IntegrityError(f"{registry.address} was not created as this project's ClaimRegistry over this "
                             "deployment's RecordRegistry and this verifier (its creation code or arguments "
                             "differ); do not trust its ClaimProven events")
    members = tuple(c["member"] for c in Ceremony(setup.directory, setup.build).transcript()["contributions"]
                    if c["phase"] == "circuit")
    return RegistryCheck(registry.address, verifier, members)


def _deployed_code(chain: ChainClient, address: str) -> bytes:
    return bytes(chain.rpc(lambda: chain.w3.eth.get_code(Web3.to_checksum_address(address))))


def _creation_data(chain: ChainClient, artifact: dict[str, Any], args: tuple[Any, ...]) -> bytes:
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    return bytes.fromhex(factory.constructor(*args).data_in_transaction[2:])


def _created_code(chain: ChainClient, artifact: dict[str, Any], args: tuple[Any, ...]) -> bytes:
    """The runtime code a deployment of `artifact` with `args` would leave, as the node computes it."""
    data = HexStr("0x" + _creation_data(chain, artifact, args).hex())
    return bytes(chain.rpc(lambda: chain.w3.eth.call({"data": data})))


def _recorded_creation(chain: ChainClient, address: str, tx_hash: str) -> bytes:
    """The input of `tx_hash`, once it is shown to be the transaction that created `address`."""
    try:
        tx = chain.rpc(lambda: chain.w3.eth.get_transaction(HexStr(tx_hash)))
        receipt = chain.rpc(lambda: chain.w3.eth.get_transaction_receipt(HexStr(tx_hash)))
    except (TransactionNotFound, ValueError, Web3Exception):
        raise IntegrityError(f"the chain has no transaction {tx_hash}, which the deployment file says created the "
                             "claim registry; do not trust the registry until its creation is found") from None
    if tx.get("to") is not None or receipt["contractAddress"] != Web3.to_checksum_address(address):
        raise IntegrityError(f"transaction {tx_hash} did not create {address}; the deployment file's record of "
                             "the registry's creation is wrong")
    return bytes(tx["input"])


def _creation_input(chain: ChainClient, address: str) -> bytes:
    """The input of the transaction that created `address`: the first block where it has code is
    found by bisection (the node must keep old state, as Anvil and an archive geth do), then the
    creating transaction in it. IntegrityError when another contract created it."""
    target = Web3.to_checksum_address(address)

    def has_code(block: int) -> bool:
        try:
            return bool(chain.rpc(lambda: chain.w3.eth.get_code(target, block_identifier=block)))
        except (ValueError, Web3Exception) as exc:  # a node that pruned that state
            raise IntegrityError(f"the node cannot show the state of block {block} ({exc}); check the registry "
                                 "against an archive node") from None

    low, high = 0, chain.head()
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if has_code(middle) else (middle + 1, high)
    block = chain.rpc(lambda: chain.w3.eth.get_block(low, full_transactions=True))
    for tx in cast(list[dict[str, Any]], block["transactions"]):
        if tx.get("to") is None:
            receipt = chain.rpc(lambda: chain.w3.eth.get_transaction_receipt(tx["hash"]))  # noqa: B023
            if receipt["contractAddress"] == target:
                return bytes(tx["input"])
    raise IntegrityError(f"{target} was created by another contract, not by a deployment transaction; "
                         "it is not a claim registry deployed by `ehr claim deploy`")


def deploy_claim_registry(chain: ChainClient, account: LocalAccount, setup: ClaimSetup) -> str:
    """Deploy the ceremony's Groth16 verifier and a ClaimRegistry over the chain's RecordRegistry."""
    return deploy_claim_registry_tx(chain, account, setup)[0]


def deploy_claim_registry_tx(chain: ChainClient, account: LocalAccount, setup: ClaimSetup) -> tuple[str, str]:
    """`deploy_claim_registry`, with the transaction that created the registry (to record it)."""
    verifier, _ = _deploy(chain, account, setup.verifier_artifact(), (), what="the Groth16 verifier")
    return _deploy(chain, account, load_artifact("ClaimRegistry"), (chain.records.address, verifier),
                   what="the claim registry")


def _deploy(chain: ChainClient, account: LocalAccount, artifact: dict[str, Any], args: tuple[Any, ...], *,
            what: str) -> tuple[str, str]:
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    result = chain.transact(account, factory.constructor(*args), action=f"deploy {what}")
    receipt = chain.rpc(lambda: chain.w3.eth.get_transaction_receipt(result.tx_hash))  # type: ignore[arg-type]
    address = receipt["contractAddress"]
    if not address:
        raise TransactionReverted(f"deploying {what} created no contract (transaction {result.tx_hash})")
    return str(address), result.tx_hash
