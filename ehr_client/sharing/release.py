"""The grantee's side of a release: MFA sessions, and m verified fragments turned into a data key.

Custodians are asked one after another until `threshold` of them released fragments of the same
delegation; a custodian that is down or refuses is skipped. Each fragment is verified against the
patient's Umbral key published on chain before it is used.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import umbral_pre

from ehr_client.chain.client import TxResult
from ehr_client.client import EHRClient, RecordInfo
from ehr_client.custodian.errors import CustodianRefused, CustodianUnavailable, KeyReleaseDenied
from ehr_client.sharing.remote import CfragAnswer, CustodianClient, CustodianSet, Session
from ehr_client.errors import ConfigError, KeyNotFound
from ehr_client.package import UMBRAL_ERRORS, PackageHeader

_SESSION_MARGIN = 15


@dataclass
class SessionBook:
    """Open MFA sessions by custodian address; saved to `path` (mode 0600) when one is given."""

    sessions: dict[str, Session] = field(default_factory=dict, repr=False)
    path: Path | None = None

    def get(self, custodian: str, *, now: float | None = None) -> Session | None:
        session = self.sessions.get(custodian)
        moment = time.time() if now is None else now
        if session is None or session.expires_at - _SESSION_MARGIN <= moment:
            return None
        return session

    def put(self, custodian: str, session: Session) -> None:
        self.sessions[custodian] = session
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w") as handle:
            json.dump({a: {"token": s.token, "expiresAt": s.expires_at} for a, s in self.sessions.items()}, handle)
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> SessionBook:
        try:
            doc = json.loads(path.read_text())
            sessions = {str(a): Session(str(s["token"]), int(s["expiresAt"])) for a, s in dict(doc).items()}
        except FileNotFoundError:
            sessions = {}
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{path} is not a session file; delete it and log in again") from None
        return cls(sessions, path)


def threshold_error(what: str, needed: int, got: int, refusals: Mapping[str, str], down: list[str]) -> Exception:
    """CustodianUnavailable when the custodians that were down could have made up the shortfall,
    else KeyReleaseDenied, with who refused and why."""
    parts = []
    if down:
        parts.append(f"unreachable: {', '.join(down)}")
    if refusals:
        parts.append("refused: " + ", ".join(f"{c} ({r})" for c, r in refusals.items()))
    detail = "; ".join(parts) or "no custodian configured"
    message = f"{what}: {got} of the {needed} custodians needed answered ({detail})"
    if got + len(down) >= needed and down:
        return CustodianUnavailable(message + "; start the custodians that are down, or try again")
    return KeyReleaseDenied(message, refusals=refusals)


class CustodianRelease:
    """`KeyRelease` through custodians, for `EHRClient.read_record(..., key_release=...)`."""

    def __init__(self, client: EHRClient, custodians: CustodianSet, sessions: SessionBook) -> None:
        self.client = client
        self.custodians = custodians
        self.sessions = sessions

    def data_key(self, info: RecordInfo, header: PackageHeader, access: TxResult) -> bytes:
        seal = header.umbral
        if seal is None:
            raise KeyNotFound(
                f"record 0x{info.record_id.hex()} has no Umbral capsule (written before the patient published an "
                "Umbral key); ask the patient for a key share or a rotation"
            )
        delegating = self.client.umbral_key_at(info.patient, seal.key_version)
        capsule = umbral_pre.Capsule.from_bytes(seal.capsule)
        groups: dict[bytes, list[CfragAnswer]] = {}
        cfrags: dict[bytes, list[umbral_pre.VerifiedCapsuleFrag]] = {}
        refusals: dict[str, str] = {}
        down: list[str] = []
        for custodian in self.custodians.clients:
            name = custodian.address or custodian.url
            try:
                answer = self._ask(custodian, info, access)
            except CustodianUnavailable:
                down.append(name)
                continue
            except CustodianRefused as refusal:
                refusals[name] = refusal.reason
                continue
            cfrag = self._verified(answer, capsule, delegating)
            if cfrag is None:
                refusals[name] = "invalid-fragment"
                continue
            groups.setdefault(answer.delegation, []).append(answer)
            cfrags.setdefault(answer.delegation, []).append(cfrag)
            if len(cfrags[answer.delegation]) >= answer.threshold:
                secret = self.client.identity.umbral_secret_for(answer.receiving_key)
                assert secret is not None  # _verified checked it
                return seal.open_reencrypted(secret, delegating, cfrags[answer.delegation], info.record_id,
                                             header.version, info.binding(header.version).context)
        needed = max((a.threshold for answers in groups.values() for a in answers), default=1)
        got = max((len(v) for v in cfrags.values()), default=0)
        raise threshold_error(f"key release for record 0x{info.record_id.hex()[:12]}…", needed, got, refusals, down)

    def _ask(self, custodian: CustodianClient, info: RecordInfo, access: TxResult) -> CfragAnswer:
        if custodian.address is None:
            self.custodians.refresh(custodian)
        assert custodian.address is not None
        session = self.sessions.get(custodian.address)
        if session is None:
            raise CustodianRefused("mfa-required", "no open session; log in with a one-time code",
                                   custodian=custodian.address)
        return custodian.request_cfrag(self.client.identity.account, info.record_id, access.tx_hash, session)

    def _verified(self, answer: CfragAnswer, capsule: umbral_pre.Capsule,
                  delegating: bytes) -> umbral_pre.VerifiedCapsuleFrag | None:
        if answer.delegating_key != delegating or self.client.identity.umbral_secret_for(answer.receiving_key) is None:
            return None
        delegating_pk = umbral_pre.PublicKey.from_compressed_bytes(delegating)
        try:
            return umbral_pre.CapsuleFrag.from_bytes(answer.cfrag).verify(
                capsule, delegating_pk, delegating_pk, umbral_pre.PublicKey.from_compressed_bytes(answer.receiving_key)
            )
        except UMBRAL_ERRORS:
            return None
