"""Every error the client raises on purpose.

One root, `EHRError`; each subclass also inherits the builtin it resembles so callers can catch
either. Messages say what happened and what to do next, and never contain health data.
"""

from __future__ import annotations


class EHRError(Exception):
    """Root of every error raised by ehr_client on purpose."""


class ConfigError(EHRError, ValueError):
    """The client is misconfigured (missing deployment file, bad RPC URL, unknown network)."""


class InvalidRecord(EHRError, ValueError):
    """The input is not a valid record (malformed FHIR, unknown category, empty file)."""


class DecryptionError(EHRError):
    """Ciphertext could not be decrypted.

    Deliberately opaque: tampered bytes, a wrong key, truncation and reordering all raise this
    same error with the same message, so a caller learns nothing about which check failed.
    """

    def __init__(self, message: str = "decryption failed: the data was altered or the key is wrong") -> None:
        super().__init__(message)


class IntegrityError(EHRError):
    """Stored bytes do not match the hash anchored on chain; nothing is returned."""


class AccessDenied(EHRError, PermissionError):
    """The caller has no valid permission (no grant, expired, revoked, not a member, suspended)."""


class RecordErased(EHRError, LookupError):
    """The record was erased (crypto-shredded and tombstoned); its content is gone for good."""


class ErasureIncomplete(EHRError, RuntimeError):
    """An erasure could not finish (versions kept being amended in); what it did stays done: run it again."""


class RecordNotFound(EHRError, LookupError):
    """No record with this id exists on chain."""


class StorageError(EHRError):
    """Root of blob-store failures."""


class StorageUnavailable(StorageError, ConnectionError):
    """The storage node is down, unreachable or timing out."""


class StorageFull(StorageUnavailable):
    """The disk holding the store or the journals is full (or over quota): free space, then run the
    same write again; it lands once (CLI exit code 5, like any storage that cannot take a write)."""


class BlobNotFound(StorageError, LookupError):
    """The store is up but does not hold the requested blob."""


class ChainError(EHRError):
    """Root of failures talking to the chain."""


class ChainUnavailable(ChainError, ConnectionError):
    """The JSON-RPC endpoint is down or unreachable."""


class NonceDisplaced(ChainUnavailable):
    """Another transaction from the same account was mined with this transaction's nonce (two
    processes sending for one account, each asking its own node for the next nonce): this one can
    never be mined, so nothing of it took effect. Send it again."""


class ChainMismatch(ChainError, ConfigError):
    """The node serves another chain than the deployment describes (reset, replaced, or wrong network)."""


class ChainStalled(ChainUnavailable, TimeoutError):
    """The node answers but the chain made no progress within the deadline (no block, no inclusion):
    e.g. too few validators are sealing. Bring validators back or raise the deadline."""


class TransactionReverted(ChainError):
    """A transaction or call reverted; `error_name` and `error_args` carry the decoded custom error."""

    def __init__(self, message: str, *, error_name: str | None = None, error_args: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = dict(error_args or {})


class InvalidGrantee(EHRError, ValueError):
    """The grantee could not act on this grant: not an active consortium member, or not a provider
    or lab for amend access. Refused before anything was signed or sent."""


class SignatureError(EHRError, ValueError):
    """A signed message is invalid: wrong signer, expired deadline, used nonce, other chain."""


class ConsentRefused(AccessDenied, SignatureError):
    """A signed consent is refused: made for another deployment, altered, already used, superseded
    by a later decision of the patient, or past its validity window (CLI exit code 3)."""


class AlreadyRelayed(EHRError):
    """A signed consent was already relayed and is in force (or nothing is left to revoke):
    nothing was sent, nothing needs doing."""


class KeystoreError(EHRError):
    """Root of keystore failures."""


class WrongPassword(KeystoreError, PermissionError):
    """The keystore password is wrong."""


class CorruptKeystore(KeystoreError, ValueError):
    """The keystore file is unreadable or was altered."""


class KeyNotFound(KeystoreError, LookupError):
    """No key with this name or type in the keystore or on chain."""


class KeyRevoked(KeystoreError):
    """The key was revoked on chain and must not be used to encrypt to its owner."""


class ClaimError(EHRError):
    """Root of zero-knowledge claim failures. Messages never carry a claim's value, code or date."""


class ClaimUnsatisfied(ClaimError, ValueError):
    """The record's claim does not satisfy the predicate: the prover refuses, no proof is made."""


class ClaimNotAvailable(ClaimError, LookupError):
    """The record carries no claim (its type or its dates are not supported) or none was committed."""


class MalformedProof(ClaimError, ValueError):
    """A proof file is not a claim proof of this format (truncated, altered structure, wrong types)."""


class ClaimProofRejected(ClaimError):
    """The chain rejects a well-formed proof: another record, verifier, challenge or predicate than the
    one it was made for, altered values, or a record that is no longer active."""


class ZkToolError(ClaimError, RuntimeError):
    """circom2 or snarkjs failed or is missing (run `make install`), or the setup files are damaged."""


class KeyDerivationRefused(SignatureError):
    """A wallet signature cannot be turned into encryption keys: not a canonical secp256k1
    signature (high s, v not 27/28, wrong length) or not made by the expected account."""


class NonDeterministicWallet(KeyDerivationRefused):
    """The wallet signed the key-derivation message twice with two different signatures: it does
    not sign deterministically (RFC 6979), so keys derived from it could never be derived again."""
