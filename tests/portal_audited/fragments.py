"""What a patient's client sends custodians, built in the test as the page builds it: signed
custodian requests, and the deposit items `AuditedSharing.delegate` makes for one record."""

from __future__ import annotations

import secrets
import time
from typing import Any

import umbral_pre
from eth_account import Account

from ehr_client.client import EHRClient
from ehr_client.client.keysource import check_header
from ehr_client.custodian import messages
from ehr_client.custodian.core import fragments_digest
from ehr_client.custodian.messages import CustodianDomain
from ehr_client.custodian.seal import fragment_associated_data, seal


def domain_of(listing: dict[str, Any]) -> CustodianDomain:
    return CustodianDomain(int(listing["domain"]["chainId"]), listing["domain"]["verifyingContract"])


def signed(key: str | bytes, domain: CustodianDomain, kind: str, message: dict[str, Any]) -> dict[str, Any]:
    full = {**message, "issuedAt": int(time.time()), "nonce": messages.new_nonce()}
    raw = bytes.fromhex(key.removeprefix("0x")) if isinstance(key, str) else key
    return {"message": full, "signature": messages.sign(raw, domain, kind, full)}


def deposit_items(patient: EHRClient, record_id: bytes, grantee: str, custodians: list[dict[str, Any]], *,
                  threshold: int) -> dict[str, list[dict[str, Any]]]:
    """Items per custodian address for one record, exactly as `AuditedSharing.delegate` makes them."""
    info = patient.get_record(record_id)
    header = patient.read_header(info.cid)
    check_header(info, header)
    assert header.umbral is not None
    delegating = patient.umbral_key_at(patient.address, header.umbral.key_version)
    secret = patient.identity.umbral_secret_for(delegating)
    receiving = patient.umbral_key_of(grantee)
    assert secret is not None and receiving is not None
    signer_key = umbral_pre.SecretKey.from_be_bytes(secret)
    kfrags = umbral_pre.generate_kfrags(signer_key, umbral_pre.PublicKey.from_compressed_bytes(receiving[1]),
                                        umbral_pre.Signer(signer_key), threshold, len(custodians), True, True)
    delegation = "0x" + secrets.token_hex(16)
    items = {}
    for kfrag, custodian in zip(kfrags, custodians, strict=True):
        public = bytes.fromhex(custodian["x25519PublicKey"][2:])
        aad = fragment_associated_data(custodian["address"], record_id, grantee)
        items[custodian["address"]] = [{
            "recordId": "0x" + record_id.hex(),
            "sealed": "0x" + seal(bytes(kfrag), public, associated_data=aad).hex(),
            "sealedTo": "0x" + public.hex(),
            "capsule": "0x" + header.umbral.capsule.hex(),
            "delegatingKey": "0x" + delegating.hex(),
            "delegatingKeyVersion": header.umbral.key_version,
            "threshold": threshold, "shares": len(custodians), "delegation": delegation,
        }]
    return items


def deposit_body(key: str, domain: CustodianDomain, custodian: str, grantee: str,
                 items: list[dict[str, Any]]) -> dict[str, Any]:
    patient = Account.from_key(key).address
    body = signed(key, domain, "Deposit", {"custodian": custodian, "patient": patient, "grantee": grantee,
                                           "fragments": fragments_digest(items)})
    return {**body, "fragments": items}
