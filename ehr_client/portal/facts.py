"""What the portal's API reads from the chain for the page: public facts only (addresses, ids,
hashes, CIDs, times), never keys or plaintext. Each function returns JSON-ready data."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from ehr_client.audit import Alert, AuditIndex, MonitorConfig, export_bundle, scan_alerts
from ehr_client.chain.abi import load_artifact
from ehr_client.chain.eip712 import CATEGORY_FIELDS, DOMAIN_TYPE, TYPES, Domain
from ehr_client.chain.calls import Call, call_many, call_request, decoded, rpc_batch
from ehr_client.chain.governance import ROLE_NAMES
from ehr_client.chain.types import WRITER_ROLES, Access, KeyType, Role, Status
from ehr_client.client import EHRClient
from ehr_client.client.lineage import Version
from ehr_client.client.model import RecordInfo, hex_id
from ehr_client.client.share import reissue_without, scopes_in_force
from ehr_client.errors import AccessDenied, InvalidRecord, RecordErased, TransactionReverted
from ehr_client.journal import ShareLog
from ehr_client.keyshare import KeyShare
from ehr_client.records import describe
from ehr_client.records.purpose import PURPOSES

ABI_CONTRACTS = ("RecordRegistry", "ConsentManager", "KeyRegistry")


def config(client: EHRClient, domain: Domain, *, relayer: str | None, network: str) -> dict[str, Any]:
    """Everything the page needs to build calls and consent documents for this deployment."""
    deployment = client.chain.deployment
    return {
        "network": network,
        "chainId": deployment.chain_id,
        "deployBlock": deployment.deploy_block,
        "contracts": {name: to_checksum_address(deployment.address(name)) for name in ABI_CONTRACTS},
        "abis": {name: load_artifact(name)["abi"] for name in ABI_CONTRACTS},
        "consent": {
            "domain": domain.as_dict(),
            "types": {"EIP712Domain": DOMAIN_TYPE, **TYPES},
            "categories": [{"field": field, "name": str(scope.name).lower(), "bit": int(scope)}
                           for field, scope in CATEGORY_FIELDS],
            "purposes": list(PURPOSES),
        },
        "keyTypes": {t.name: int(t) for t in KeyType},
        "access": {a.name: int(a) for a in Access},
        "relayer": relayer,
    }


def record_json(info: RecordInfo) -> dict[str, Any]:
    return {
        "recordId": hex_id(info.record_id),
        "patient": info.patient,
        "author": info.author,
        "scope": info.scope,
        "categories": describe(info.scope),
        "status": info.status,
        "contentHash": "0x" + info.content_hash.hex(),
        "cid": info.cid,
        "previousId": None if info.previous_id is None else hex_id(info.previous_id),
        "blockNumber": info.block_number,
        "timestamp": info.timestamp,
        "txHash": info.tx_hash,
        "batched": info.batch is not None,
    }


def records(client: EHRClient, patient: str) -> dict[str, Any]:
    """Every record version of `patient` (oldest first) and what was skipped as unverifiable."""
    listing = client.list_records_report(patient)
    return {
        # `stored`: whether the portal's store still holds the bytes (an erase whose unpin was
        # interrupted shows here, and the page offers to finish it).
        "records": [{**record_json(info), "stored": client.store.has(info.cid)} for info in listing.records],
        "skipped": [{"what": s.what, "reason": s.reason, "author": s.author, "txHash": s.tx_hash}
                    for s in listing.skipped],
    }


def encryption_key(client: EHRClient, account: str) -> dict[str, Any]:
    """`account`'s registration, current X25519 and Umbral keys (version and public key) and consortium
    membership, if any, in one round trip. The page refuses a grant its grantee could not act on."""
    chain = client.chain
    account = to_checksum_address(account)
    calls = [Call(chain.records, "isPatient", (account,)), Call(chain.consortium, "memberOf", (account,)),
             Call(chain.keys, "currentKey", (account, KeyType.X25519)),
             Call(chain.keys, "currentKey", (account, KeyType.UMBRAL))]
    answers = rpc_batch(chain, [call_request(c) for c in calls])
    registered = bool(decoded(calls[0], answers[0], action="look up patient"))
    role, suspended, _ = decoded(calls[1], answers[1], action="look up membership")
    keys: list[dict[str, Any] | None] = []
    for call, answer in zip(calls[2:], answers[2:], strict=True):
        try:
            version, key = decoded(call, answer, action="look up key")
        except TransactionReverted:
            keys.append(None)
        else:
            keys.append({"version": int(version), "publicKey": "0x" + bytes(key).hex()})
    return {"account": account, "registeredPatient": registered, "member": membership(role, suspended),
            "x25519": keys[0], "umbral": keys[1]}


def membership(role: int, suspended: bool) -> dict[str, Any] | None:
    """A `memberOf` answer as the page shows it: None for a non-member."""
    if Role(int(role)) == Role.NONE:
        return None
    return {"role": ROLE_NAMES[int(role)], "suspended": bool(suspended),
            "mayAmend": not suspended and Role(int(role)) in WRITER_ROLES}


class AuditView:
    """The patient's timeline from a local audit index (one per portal), with the monitor's alerts."""

    def __init__(self, client: EHRClient, state_dir: Path, *, monitor: MonitorConfig | None = None) -> None:
        self.client = client
        self.state_dir = state_dir
        self.monitor = monitor or MonitorConfig()
        self._lock = threading.Lock()  # one sync at a time; SQLite connections stay in one thread

    def timeline(self, patient: str) -> dict[str, Any]:
        patient = to_checksum_address(patient)
        with self._lock:
            alerts = [a for a in scan_alerts(self.client.chain, state_dir=self.state_dir, config=self.monitor)
                      if a.patient == patient]
            with AuditIndex.open(self.client.chain, self.state_dir) as index:
                rows = index.trail(patient=patient)
        flagged: dict[tuple[str, int | None], list[Alert]] = {}
        for alert in alerts:
            flagged.setdefault((alert.tx_hash.lower(), alert.log_index), []).append(alert)
        entries = []
        for row in rows:
            entry = row.to_json()
            key = (row.tx_hash.lower(), None if row.log_index < 0 else row.log_index)
            entry["alerts"] = [a.to_json() for a in flagged.get(key, [])]
            entries.append(entry)
        return {"patient": patient, "entries": entries, "alerts": [a.to_json() for a in alerts]}

    def grants(self, patient: str) -> dict[str, Any]:
        """Grants in force now, for every grantee the patient ever granted, each with the grantee's
        membership: the chain checks it whenever the grantee acts, so terms held by a non-member or a
        suspended member open nothing now (`opensNothing`), and open on admission or reinstatement."""
        patient = to_checksum_address(patient)
        chain = self.client.chain
        with self._lock, AuditIndex.open(chain, self.state_dir) as index:
            index.sync()
            grantees = list(dict.fromkeys(str(row.subject) for row in index.grants(patient) if row.subject))
            requesters = list(dict.fromkeys(
                str(row.subject or row.actor) for row in
                index.trail(patient=patient, names=("BreakGlassRequested", "BreakGlassActivated"), include_failed=False)
                if row.subject or row.actor))
        now = chain.now()
        grantees = [to_checksum_address(g) for g in grantees]
        calls = [call for g in grantees for call in (Call(chain.consent, "getGrant", (patient, g)),
                                                      Call(chain.consortium, "memberOf", (g,)))]
        answers = call_many(chain, calls, action="read grants") if calls else []
        active = []
        for grantee, grant, (role, suspended, _) in zip(grantees, answers[::2], answers[1::2], strict=True):
            scopes, expires, access, nonce, _, _ = grant
            if int(access) != Access.NONE and int(expires) > now:
                member = membership(role, suspended)
                active.append({"grantee": grantee, "scopes": int(scopes), "categories": describe(int(scopes)),
                               "access": Access(int(access)).name.lower(), "expiresAt": int(expires),
                               "nonce": int(nonce), "member": member,
                               "opensNothing": member is None or member["suspended"]})
        return {"patient": patient, "now": now, "grants": active, "breakGlass": self._break_glass(patient, requesters, now)}

    def _break_glass(self, patient: str, requesters: list[str], now: int) -> list[dict[str, Any]]:
        """Emergency access requested or in force: pending (awaiting a second provider) or active."""
        chain = self.client.chain
        window = int(chain.call(chain.consent.functions.BREAK_GLASS_CONFIRM_WINDOW(), action="read break-glass window"))
        found = []
        for requester in requesters:
            requested, expires, reason = chain.call(
                chain.consent.functions.getBreakGlass(patient, to_checksum_address(requester)),
                action="read break-glass")
            if int(expires) > now:
                state = "active"
            elif int(expires) == 0 and int(requested) and now <= int(requested) + window:
                state = "pending"
            else:
                continue
            found.append({"requester": to_checksum_address(requester), "state": state, "reason": int(reason),
                          "requestedAt": int(requested), "expiresAt": int(expires) or None,
                          "confirmBy": int(requested) + window if state == "pending" else None})
        return found

    def fhir_export(self, patient: str) -> dict[str, Any]:
        """The trail as a FHIR R4 Bundle of AuditEvent and Consent resources (no health data)."""
        with self._lock, AuditIndex.open(self.client.chain, self.state_dir) as index:
            index.sync()
            return export_bundle(index, patient=to_checksum_address(patient))


def batched_record(client: EHRClient, record_id: bytes) -> dict[str, Any]:
    """What the wallet sends to tombstone or amend a record anchored in a batch: the contracts'
    `BatchedRecord` (the batch's commitment, the leaf and its Merkle path, from the verified
    manifest), and whether the chain already stores the record on its own (then it is addressed by
    id, as a single record is).

    Raises:
        RecordNotFound: no such record; InvalidRecord: it was anchored alone.
    """
    info = client.get_record(record_id)
    if info.batch is None:
        raise InvalidRecord(f"record {hex_id(record_id)} was anchored on its own; address it by its id")
    b = info.batch
    status = client.chain.call(client.chain.records.functions.recordStatus(record_id), action="look up record")
    return {
        "recordId": hex_id(record_id),
        "stored": int(status) != Status.NONE,
        "batchedRecord": {
            "author": b.author, "batchKey": "0x" + b.batch_key.hex(), "root": "0x" + b.root.hex(),
            "patient": b.patient, "scopes": b.scopes, "leafCount": b.leaf_count, "index": b.index, "scope": b.scope,
            "contentHash": "0x" + b.content_hash.hex(), "cidHash": "0x" + b.cid_hash.hex(),
            "proof": ["0x" + node.hex() for node in b.proof],
        },
    }


def erasable(client: EHRClient, record_id: bytes) -> list[Version]:
    """The record and its earlier versions as the chain states them, verified or not, once every one
    is tombstoned on chain (else empty). Only those that verify have bytes to unpin; key shares are
    re-issued without all of them, which needs only their ids."""
    versions = client.versions_of(record_id)
    return versions if all(v.tombstoned for v in versions) else []


def record_versions(client: EHRClient, record_id: bytes) -> dict[str, Any]:
    """Every version of the record, oldest first: the ones it was amended onto and the ones amended
    onto it, transitively, as the chain states them (`RecordAmended`, `recordStatus`), with each
    one's status now. Unlike the listing, this includes a version whose anchored pointer does not
    verify (`verified` false, and why): it is still live on chain until it is tombstoned, so the
    page's erasure follows this. `batched`: the version is tombstoned with its batch's proof."""
    line = client.versions_of(record_id)
    later = client.successors_of({record_id})
    return {"recordId": hex_id(record_id), "versions": [_version_json(v) for v in [*reversed(line), *later]]}


def _version_json(version: Version) -> dict[str, Any]:
    return {"recordId": hex_id(version.record_id),
            "previousId": None if version.previous_id is None else hex_id(version.previous_id),
            "patient": version.patient, "author": version.author,
            "status": "active" if version.status == Status.NONE else version.status.label,  # a batched leaf as anchored
            "verified": version.info is not None, "problem": version.problem,
            "batched": version.info is not None and version.info.batch is not None}


def share_log(state_dir: Path, patient: str) -> ShareLog:
    """The key shares stored through this portal for `patient` (see `ShareLog`)."""
    return ShareLog(state_dir / "keyshares" / f"{to_checksum_address(patient)}.log",
                    then="ask the patient to grant again from the page, so their key shares are stored anew")


def reissue_shares_without(client: EHRClient, state_dir: Path, versions: list[Version]) -> list[dict[str, Any]]:
    """Re-issue every key share stored here for the erased `versions`' patient without their keys
    (no key is needed: each entry is sealed on its own), unpin the old shares, and say what the
    patient hands each grantee now (`new` is null when nothing was left to share), from the log:
    every re-issue for these versions, whoever asked first. A damaged share is listed with its
    `problem`, left in place."""
    if not versions:
        return []
    shares = share_log(state_dir, versions[0].patient)
    return [{"grantee": r.grantee, "old": str(r.old), "new": None if r.new is None else str(r.new), "dropped": r.dropped,
             "problem": r.problem}
            for r in reissue_without(client.store, shares, to_checksum_address(versions[0].patient),
                                     {v.record_id for v in versions})]


def unpin_erased(client: EHRClient, versions: list[RecordInfo]) -> tuple[list[str], list[dict[str, str]]]:
    """`EHRClient.unpin_versions`, as the API answers it: (CIDs removed or already gone, [{cid, reason}] kept)."""
    removed, kept = client.unpin_versions(versions)
    return [str(cid) for cid in removed], [{"cid": str(cid), "reason": reason} for cid, reason in kept]


def rotated_away(client: EHRClient, record_id: bytes) -> RecordInfo:
    """A version the patient re-encrypted: superseded by a version the patient wrote themselves.
    An amendment by a provider also supersedes, but its predecessor is history and stays.

    Raises:
        AccessDenied: the chain does not show that.
    """
    old = client.get_record(record_id)
    successors = [r for r in client.list_records(old.patient) if r.previous_id == old.record_id]
    if old.status != Status.SUPERSEDED.label or not successors or successors[0].author != old.patient:
        raise AccessDenied(f"record {hex_id(record_id)} is not superseded by a version its patient wrote; only a "
                           "version the patient rotated away is unpinned (amendments by providers stay as history)")
    return old


def check_share_under_grant(client: EHRClient, share: KeyShare) -> None:
    """A key share is a bearer capability, so the portal stores one only when every record in it is
    the patient's and the chain lets the grantee read its category now: never ahead of a grant that
    a signature relayed later (or never) would put in force."""
    listed = {info.record_id: info for info in client.list_records(share.patient)}
    scopes: set[int] = set()
    for entry in share.entries:
        info = listed.get(entry.record_id)
        if info is None:
            raise AccessDenied(f"record {hex_id(entry.record_id)} is not a record of {share.patient}; "
                               "the key share was not stored")
        if info.status == Status.TOMBSTONED.label:
            raise RecordErased(f"record {hex_id(entry.record_id)} was erased; a key share holding its key is not "
                               "stored (share again without it)")
        scopes.add(info.scope)
    refused = sorted(scopes - scopes_in_force(client.chain, share.patient, share.grantee, scopes))
    if refused:
        categories = ", ".join(sorted({c for s in refused for c in describe(s)}))
        raise AccessDenied(f"no grant to {share.grantee} for {categories} is in force on chain; a key share is "
                           "stored only once the grant is (grant first, then share)")
