"""Claims for one identity: commit on write (the author), prove (a reader, normally the patient),
verify (anyone, by a view call or a transaction that enters the patient's audit trail)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from ehr_client.chain.client import TxResult
from ehr_client.claims.extract import extract_claim
from ehr_client.claims.field import FIELD
from ehr_client.claims.model import ClaimKind
from ehr_client.claims.predicate import Predicate
from ehr_client.claims.proof_file import ClaimProof
from ehr_client.claims.prover import prove
from ehr_client.claims.registry import CheckedClaim, ClaimRegistry
from ehr_client.claims.setup import ClaimSetup
from ehr_client.client import FHIR_MEDIA_TYPE, EHRClient, RecordInfo, WriteResult
from ehr_client.client.keysource import check_header, own_data_key
from ehr_client.crypto import claim_secret, iter_decrypt
from ehr_client.errors import AccessDenied, ClaimNotAvailable, ClaimProofRejected, IntegrityError, ZkToolError
from ehr_client.package import parse_header
from ehr_client.records.canonical import parse_json

NO_CHALLENGE = bytes(32)
_SALT_LABEL = b"ehr-claim-salt/1"


def claim_salt(secret: bytes) -> int:
    """The commitment's salt: a field element from the record's claim secret (512 bits reduced, so
    it is uniform to within 2^-258)."""
    return int.from_bytes(hashlib.sha512(_SALT_LABEL + secret).digest(), "big") % FIELD


@dataclass(frozen=True)
class ClaimedWrite:
    record: WriteResult
    commit: TxResult | None
    """None when the record carries no claim, or its commitment was already set by an earlier attempt."""


class Claims:
    def __init__(self, client: EHRClient, registry: ClaimRegistry, setup: ClaimSetup | None = None) -> None:
        self.client = client
        self.registry = registry
        self.setup = setup

    # --- the author --------------------------------------------------------------------------

    def add_record(self, patient: str, resource: Mapping[str, Any], **options: Any) -> ClaimedWrite:
        """Write a FHIR record and commit to its claim. A retry after a crash between the two lands as
        the same record and only adds the missing commitment."""
        written = self.client.add_record(patient, dict(resource), **options)
        return ClaimedWrite(written, self.commit(written))

    def amend_record(self, previous_id: bytes, resource: Mapping[str, Any]) -> ClaimedWrite:
        """A new version commits to its own claim; proofs about the old version stop counting."""
        written = self.client.amend_record(previous_id, dict(resource))
        return ClaimedWrite(written, self.commit(written))

    def commit(self, written: WriteResult) -> TxResult | None:
        """Commit to the claim of a record this identity just wrote, as the stored record says it (the
        author opens it with its own key; no access request): what is committed is what the patient
        will read. None when the record carries no claim or the same commitment is already set."""
        if written.salt is None:
            raise ZkToolError("this write result carries no salt; write the record with this client version")
        info = self.client.get_record(written.record_id)
        return self._commit(info, partial(self.registry.commit, self.client.identity.account, written.salt),
                            salt=written.salt)

    def commit_batched(self, record_ids: Iterable[bytes]) -> list[TxResult]:
        """Commit to the claims of records this identity anchored in batches (`ehr_client.batch`), each
        with its Merkle proof; records without a claim, or already committed alike, send nothing.
        Run again after a failure: it only adds the commitments still missing."""
        sent = []
        for record_id in record_ids:
            info = self.client.get_record(record_id)
            batch = info.batch
            if batch is None:
                raise ClaimNotAvailable("this record was not anchored in a batch; its claims are committed on write")
            if to_checksum_address(batch.author) != to_checksum_address(self.client.address):
                raise AccessDenied("only the batch's author commits to the claims of its records")
            if info.patient == to_checksum_address(self.client.address):
                continue  # a patient's own record carries no attested claim
            tx = self._commit(info, partial(self.registry.commit_batched, self.client.identity.account, batch),
                              salt=None)
            if tx is not None:
                sent.append(tx)
        return sent

    def restore(self, record_id: bytes, salt: bytes | None = None) -> TxResult | None:
        """After `ehr_client.batch.recover`: commit again the claim of a record this identity committed
        before (its claims log names it) if the chain lost it. A single record needs the `salt` it was
        anchored with. None when there is nothing to commit: no claim, already committed, the author's
        own record, or a version that is no longer active (proofs about it could not count)."""
        info = self.client.get_record(record_id)
        if info.patient == to_checksum_address(self.client.address) or info.status != "active":
            return None
        if info.batch is not None:
            sent = self.commit_batched([record_id])
            return sent[0] if sent else None
        if salt is None:
            raise ZkToolError("restoring the claim of a single record needs the salt it was anchored with")
        return self._commit(info, partial(self.registry.commit, self.client.identity.account, salt), salt=salt)

    def _commit(self, info: RecordInfo, send: Callable[[int], TxResult], *, salt: bytes | None) -> TxResult | None:
        """Commit, and note the commitment in the author's claims log (`Journal.claimed`) once it is
        on chain, whether this call or an earlier one sent it."""
        blob = self.client.fetch_verified(info, doing="committed to")
        header, offset = parse_header(blob)
        binding = check_header(info, header)
        data_key = own_data_key(self.client.identity, header, binding)
        if data_key is None:
            raise AccessDenied("only the record's author commits to its claims, with the key it sealed for itself")
        if header.media_type != FHIR_MEDIA_TYPE:
            return None
        plaintext = b"".join(iter_decrypt(memoryview(blob)[offset:], data_key, record_id=info.record_id,
                                          version=header.version, context=binding.context))
        claim = extract_claim(parse_json(plaintext))
        if claim is None or not _fits(claim.kind, info.scope):
            return None  # no claim, or one the record's category cannot attest (the chain would refuse it)
        commitment = claim.commitment(info.record_id, claim_salt(claim_secret(data_key, info.record_id)))
        current = self.registry.commitment_of(info.record_id)
        if current == commitment:
            self.client.journal.claimed(info.record_id, salt)
            return None
        if current != 0:
            raise IntegrityError("this record's claims were committed to other values; a commitment never changes")
        sent = send(commitment)
        self.client.journal.claimed(info.record_id, salt)
        return sent

    # --- the prover --------------------------------------------------------------------------

    def prove(self, record_id: bytes, predicate: Predicate | str, *, verifier: str,
              challenge: bytes = NO_CHALLENGE) -> ClaimProof:
        """Read the record (an audited access), and prove `predicate` about its claim to `verifier`.
        Raises ClaimUnsatisfied, without proving, when the claim does not satisfy it."""
        if self.setup is None:
            raise ZkToolError("proving needs the ceremony's files; pass --setup DIR (from `ehr claim setup`)")
        info = self.client.get_record(record_id)
        if info.status != "active":
            raise ClaimNotAvailable("the record was amended or erased; prove claims of its current version")
        commitment = self.registry.commitment_of(record_id)
        if commitment == 0:
            raise ClaimNotAvailable("no claim was committed for this record when it was written; only records "
                                    "written with claims (Observation, Immunization, Patient, Condition) have them")
        read = self.client.read_record(info)
        claim = extract_claim(parse_json(read.data))
        if claim is None:
            raise ClaimNotAvailable("this record carries no claim a predicate can be proven about")
        if not _fits(claim.kind, info.scope):
            raise ClaimNotAvailable(f"a {claim.kind.label} claim cannot come from a record filed under this record's "
                                    "category; its author's grant for that category does not attest it")
        if isinstance(predicate, str):
            predicate = Predicate.parse(predicate, kind=claim.kind)
        verifier = to_checksum_address(verifier)
        binding = self.registry.binding_of(verifier, challenge)
        proof = prove(self.setup, claim, claim_salt(read.claim_secret), record_id, commitment, binding, predicate)
        return ClaimProof(self.client.chain.chain_id, self.registry.address, record_id, verifier, challenge,
                          predicate, proof)

    # --- the verifier ------------------------------------------------------------------------

    def check(self, proof: ClaimProof, *, expected: Predicate | None = None,
              patient: str | None = None) -> CheckedClaim:
        """A view call: whether the chain accepts `proof` (no gas, no audit entry)."""
        self._matches(proof, expected)
        checked = self.registry.check(proof.record_id, proof.verifier, proof.challenge, proof.predicate, proof.proof)
        if patient is not None and to_checksum_address(patient) != checked.patient:
            raise ClaimProofRejected("the proof is about a record of another patient than the one you named")
        return checked

    def record_check(self, proof: ClaimProof, *, expected: Predicate | None = None) -> TxResult:
        """Check on chain as the verifier named in the proof, emitting ClaimProven for the audit trail."""
        self._matches(proof, expected)
        if to_checksum_address(self.client.address) != proof.verifier:
            raise ClaimProofRejected("this proof was made for another verifier; only that verifier can use it")
        return self.registry.record(self.client.identity.account, proof.record_id, proof.challenge, proof.predicate,
                                    proof.proof)

    def _matches(self, proof: ClaimProof, expected: Predicate | None) -> None:
        if proof.chain_id != self.client.chain.chain_id or proof.registry != self.registry.address:
            raise ClaimProofRejected("the proof was made for another chain or claim registry; check --network")
        if expected is not None and expected != proof.predicate:
            raise ClaimProofRejected(f"the proof shows `{proof.predicate.describe()}`, not what was asked "
                                     f"(`{expected.describe()}`); ask the patient for a proof of your predicate")


def predicate_id(predicate: Predicate) -> bytes:
    """keccak256 of the ABI-encoded predicate, as ClaimProven carries it."""
    return bytes(keccak(encode(["(uint8,uint256,uint64,uint64,uint32,uint32,bool,uint256[8])"],
                               [predicate.as_struct()])))


def _fits(kind: ClaimKind, scope: int) -> bool:
    """Whether a record of category `scope` may attest a claim of `kind` (as ClaimRegistry checks)."""
    return scope != 0 and scope & ~int(kind.scopes) == 0
