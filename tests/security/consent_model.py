"""A plain-Python model of the consent and record rules, for the stateful property test.

Written from the interface documentation (contracts/interfaces/*.sol), not from the contract
code: every prediction says which custom error a call must revert with (None: it must succeed),
checked in the order the interface lists the requirements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ehr_client.chain.types import Access, Role, Status

CONFIRM_WINDOW = 15 * 60
BREAK_GLASS_WINDOW = 3600


# The only moves a record's status may make; anything else rewrites history.
ALLOWED_TRANSITIONS = frozenset({
    (Status.NONE, Status.ACTIVE), (Status.NONE, Status.TOMBSTONED),
    (Status.ACTIVE, Status.SUPERSEDED), (Status.ACTIVE, Status.TOMBSTONED),
    (Status.SUPERSEDED, Status.TOMBSTONED),
})


@dataclass
class Grant:
    scopes: int = 0
    expires_at: int = 0
    access: Access = Access.NONE
    nonce: int = 0
    grant_nonce: int = 0


@dataclass
class BreakGlass:
    requested_at: int = 0
    expires_at: int = 0
    reason: int = 0


@dataclass(frozen=True)
class RecordEvent:
    """What the RecordAdded event of one record version must say, forever."""

    record_id: bytes
    patient: str
    author: str
    content_hash: bytes
    scope: int
    previous_id: bytes
    cid: bytes


@dataclass
class Record:
    patient: str
    scope: int
    status: Status


@dataclass
class ConsentModel:
    """Members, grants, break-glass and records, keyed by checksummed address."""

    roles: dict[str, Role]
    patients: set[str]
    suspended: set[str] = field(default_factory=set)
    grants: dict[tuple[str, str], Grant] = field(default_factory=dict)
    break_glass: dict[tuple[str, str], BreakGlass] = field(default_factory=dict)
    records: dict[bytes, Record] = field(default_factory=dict)
    added: list[RecordEvent] = field(default_factory=list)
    tombstoned: list[bytes] = field(default_factory=list)
    granted_events: int = 0

    # --- views -----------------------------------------------------------------------------

    def grant_of(self, patient: str, grantee: str) -> Grant:
        return self.grants.get((patient, grantee), Grant())

    def active(self, account: str) -> bool:
        return self.roles.get(account, Role.NONE) != Role.NONE and account not in self.suspended

    def active_provider(self, account: str) -> bool:
        return self.roles.get(account) == Role.PROVIDER and account not in self.suspended

    def covers(self, grant: Grant, scopes: int, needed: Access, now: int) -> bool:
        return scopes != 0 and grant.access >= needed and grant.expires_at > now and grant.scopes & scopes == scopes

    def break_glass_active(self, patient: str, reader: str, now: int) -> bool:
        return self.break_glass.get((patient, reader), BreakGlass()).expires_at > now and self.active_provider(reader)

    def can_read(self, patient: str, reader: str, scopes: int, now: int) -> bool:
        if reader == patient:
            return True
        if not self.active(reader):
            return False
        return self.covers(self.grant_of(patient, reader), scopes, Access.READ, now) or \
            self.break_glass_active(patient, reader, now)

    def can_amend(self, patient: str, author: str, scopes: int, now: int) -> bool:
        if author == patient:
            return True
        return (self.covers(self.grant_of(patient, author), scopes, Access.AMEND, now)
                and author not in self.suspended and self.roles.get(author) in (Role.PROVIDER, Role.LAB))

    # --- consent -----------------------------------------------------------------------------

    def grant_error(self, patient: str, grantee: str, scopes: int, access: Access, expires_at: int,
                    now: int) -> str | None:
        if scopes == 0 or access == Access.NONE or expires_at <= now:
            return "ConsentInvalidTerms"
        # Membership is the grantee's to prove when it acts (can_read, can_amend), not the grant's.
        if grantee == patient:
            return "ConsentInvalidGrantee"
        return None

    def apply_grant(self, patient: str, grantee: str, scopes: int, access: Access, expires_at: int, *,
                    signed_at: int | None = None) -> bool:
        """Store the grant; True when the terms changed (an AccessGranted event is due). Every grant,
        a direct one that repeats the terms too, moves the pair's nonce on, and the grant remembers
        the nonce it was decided at: the signature's, or the new one for a direct grant (which
        outranks every signature given out before it)."""
        current = self.grants.setdefault((patient, grantee), Grant())
        changed = (current.scopes, current.access, current.expires_at) != (scopes, access, expires_at)
        current.nonce += 1
        current.grant_nonce = current.nonce if signed_at is None else signed_at
        current.scopes, current.access, current.expires_at = scopes, access, expires_at
        self.granted_events += int(changed)
        return changed

    def signed_grant_error(self, patient: str, grantee: str, scopes: int, access: Access, expires_at: int,
                           nonce: int, deadline: int, now: int, *, genuine: bool) -> str | None:
        if now > deadline:
            return "ConsentSignatureExpired"
        if not genuine or nonce != self.grant_of(patient, grantee).nonce:
            return "ConsentInvalidSignature"
        # A relayed signature is taken up only by an active member (a provider or lab to amend).
        role = self.roles.get(grantee, Role.NONE)
        if role == Role.NONE or grantee in self.suspended or (
                access == Access.AMEND and role not in (Role.PROVIDER, Role.LAB)):
            return "ConsentInvalidGrantee"
        return self.grant_error(patient, grantee, scopes, access, expires_at, now)

    def apply_cancel(self, patient: str, grantee: str) -> None:
        current = self.grants.setdefault((patient, grantee), Grant())
        current.nonce += 1
        if current.access != Access.NONE:
            current.grant_nonce = current.nonce

    def revoke_error(self, patient: str, grantee: str) -> str | None:
        return "ConsentNoGrant" if self.grant_of(patient, grantee).access == Access.NONE else None

    def apply_revoke(self, patient: str, grantee: str, *, signed_at: int | None = None) -> None:
        """Clear the grant. A direct revocation moves the nonce on, voiding signatures issued
        before; a signed one at nonce n voids the grants signed at n not yet relayed."""
        nonce = self.grant_of(patient, grantee).nonce
        if signed_at is None or signed_at == nonce:
            nonce += 1
        self.grants[(patient, grantee)] = Grant(nonce=nonce)

    def signed_revoke_error(self, patient: str, grantee: str, nonce: int, deadline: int, now: int) -> str | None:
        """A revocation signed at nonce n ends any grant decided at n or earlier."""
        if now > deadline:
            return "ConsentSignatureExpired"
        current = self.grant_of(patient, grantee)
        if nonce > current.nonce:
            return "ConsentInvalidSignature"
        if current.access == Access.NONE:
            return None if nonce == current.nonce else "ConsentNoGrant"
        if current.grant_nonce > nonce:
            return "ConsentRevocationSuperseded"
        return None

    # --- break-glass ---------------------------------------------------------------------------

    def open_error(self, requester: str, reason: int) -> str | None:
        if not self.active_provider(requester):
            return "ConsentBreakGlassNotProvider"
        return "ConsentBreakGlassInvalidReason" if reason == 0 else None

    def apply_open(self, patient: str, requester: str, reason: int, now: int) -> None:
        self.break_glass[(patient, requester)] = BreakGlass(requested_at=now, expires_at=0, reason=reason)

    def confirm_error(self, patient: str, requester: str, approver: str, now: int) -> str | None:
        if not self.active_provider(approver):
            return "ConsentBreakGlassNotProvider"
        if approver == requester:
            return "ConsentBreakGlassSameProvider"
        request = self.break_glass.get((patient, requester), BreakGlass())
        if request.requested_at == 0 or request.expires_at != 0 or now > request.requested_at + CONFIRM_WINDOW:
            return "ConsentBreakGlassNotPending"
        return None

    def apply_confirm(self, patient: str, requester: str, now: int) -> None:
        self.break_glass[(patient, requester)].expires_at = now + BREAK_GLASS_WINDOW

    # --- records -------------------------------------------------------------------------------

    def add_error(self, patient: str, author: str, scope: int, now: int) -> str | None:
        if patient not in self.patients:
            return "RecordPatientNotRegistered"
        if not self.can_amend(patient, author, scope, now):
            return "RecordUnauthorizedAuthor"
        return None

    def amend_error(self, previous: bytes, author: str, now: int) -> str | None:
        record = self.records.get(previous)
        if record is None:
            return "RecordNotFound"
        if record.status != Status.ACTIVE:
            return "RecordNotActive"
        if not self.can_amend(record.patient, author, record.scope, now):
            return "RecordUnauthorizedAuthor"
        return None

    def tombstone_error(self, record_id: bytes, caller: str) -> str | None:
        record = self.records.get(record_id)
        if record is None:
            return "RecordNotFound"
        if record.patient != caller:
            return "RecordNotPatient"
        return "RecordNotActive" if record.status == Status.TOMBSTONED else None

    def access_outcome(self, record_id: bytes, reader: str, now: int) -> tuple[str | None, bool]:
        """(expected error, emergency flag of the AccessRequested event) of requestAccess."""
        record = self.records.get(record_id)
        if record is None:
            return "RecordNotFound", False
        if record.status == Status.TOMBSTONED:
            return "ConsentRecordErased", False
        if reader == record.patient:
            return None, False
        if self.active(reader) and self.covers(self.grant_of(record.patient, reader), record.scope, Access.READ, now):
            return None, False
        if self.active(reader) and self.break_glass_active(record.patient, reader, now):
            return None, True
        return "ConsentUnauthorized", False
