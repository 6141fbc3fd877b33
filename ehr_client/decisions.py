"""The consent decisions and erasures a patient was told are done, logged so a chain that loses them
cannot silently undo them.

A grant, a revocation or a tombstone is appended, fsynced, to `<state_dir>/decisions.log` once it
is mined and before it is reported (one checked JSON line: what, whom or which record, the terms,
tx hash and block; addresses, scopes and record ids only, no health data). The log is counted
(`ehr_client.journal.append_counted`), so a copy cut short is `JournalDamaged`, not an empty past.
`ehr record recover` checks the last decision per grantee and each erasure against the chain and
applies again what a rollback lost (`ehr_client.batch.redecide`).

A signed consent is the relayer's transaction, not the patient's acknowledged write (the patient
never learns when, or whether, it was relayed): the relayer logs it here, with the signed document,
and the relayer's `recover` relays it again if a chain lost it, while its signature is valid and its
nonce current; otherwise it reports it `refused` and the patient must sign again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from eth_utils import to_checksum_address

from ehr_client.journal import append_counted, checked_line, read_entries, unwritable

GRANT, REVOKE, ERASE = "grant", "revoke", "erase"


class Mined(Protocol):
    """A mined transaction (`ehr_client.chain.client.TxResult`; this module sits below the chain layer)."""

    @property
    def tx_hash(self) -> str: ...

    @property
    def block_number(self) -> int: ...


@dataclass(frozen=True)
class Decision:
    kind: str  # GRANT, REVOKE or ERASE
    patient: str
    subject: str  # the grantee's address, or the erased record version's id (hex)
    tx_hash: str
    block: int
    scopes: int = 0
    access: int = 0
    expires_at: int = 0
    purpose: str = ""
    signed: str | None = None  # a relayed consent: the signed document (`SignedConsent.to_json`)

    def __post_init__(self) -> None:
        if self.kind not in (GRANT, REVOKE, ERASE):  # a line of another kind is damage, never a revocation
            raise ValueError(f"unknown decision {self.kind!r}")
        if self.kind != ERASE:  # one spelling per (patient, grantee), whoever logged it
            object.__setattr__(self, "subject", to_checksum_address(self.subject))
        object.__setattr__(self, "patient", to_checksum_address(self.patient))


class DecisionLog:
    """`<state_dir>/decisions.log`: the patient's acknowledged grants, revocations and erasures."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "decisions.log"

    def add(self, decision: Decision) -> None:
        payload = json.dumps(asdict(decision), separators=(",", ":"), sort_keys=True).encode()
        done = (f"the {decision.kind} is done (tx {decision.tx_hash}, block {decision.block}) but not logged, so a "
                "node rollback that loses it would go unnoticed")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            append_counted(self.path, checked_line(payload), then=f"run `ehr record recover`; {done}: check it with "
                           "`ehr audit` after the next rollback")
        except OSError as exc:
            error = unwritable(self.path.parent, exc)
            raise type(error)(f"{done}: {str(error).split(';')[0]}; free disk space or fix permissions, then check "
                              "it with `ehr audit` after any node rollback") from None

    def granted(self, patient: str, grantee: str, scopes: int, access: int, expires_at: int, purpose: str,
                tx: Mined) -> None:
        self.add(Decision(GRANT, patient, grantee, tx.tx_hash, tx.block_number, scopes, access, expires_at, purpose))

    def revoked(self, patient: str, grantee: str, tx: Mined) -> None:
        self.add(Decision(REVOKE, patient, grantee, tx.tx_hash, tx.block_number))

    def relayed(self, kind: str, patient: str, grantee: str, signed: str, tx: Mined, *, scopes: int = 0,
                access: int = 0, expires_at: int = 0, purpose: str = "") -> None:
        self.add(Decision(kind, patient, grantee, tx.tx_hash, tx.block_number, scopes, access, expires_at, purpose,
                          signed))

    def erased(self, patient: str, record_id: bytes, tx: Mined) -> None:
        self.add(Decision(ERASE, patient, "0x" + record_id.hex(), tx.tx_hash, tx.block_number))

    def decisions(self) -> list[Decision]:
        """Every logged decision, oldest first; damage or a cut raises `JournalDamaged`."""
        then = "run `ehr record recover` (and check that line's grant, revocation or erasure in `ehr audit`)"
        return read_entries(self.path, lambda fields: Decision(**fields), then=then, counted=True)
