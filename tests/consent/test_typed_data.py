"""One definition of the consent types (ehr_client.chain.eip712), checked against the contract."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ehr_client.chain.eip712 import (
    CATEGORY_FIELDS,
    NAMED_SCOPES,
    Domain,
    categories,
    check_domain_name,
    default_domain_name,
    encode_type,
    grant_typed_data,
    parse_typed_data,
    rebuild_typed_data,
    scopes_of,
    typehash,
)
from ehr_client.errors import InvalidRecord
from ehr_client.records.scopes import Scope
from tests.constants import CONSENT_DOMAIN_NAME, PURPOSE

PATIENT, GRANTEE = "0x" + "11" * 20, "0x" + "22" * 20


def test_python_types_hash_to_the_contracts_typehashes(network: Any, consent: Any) -> None:
    assert typehash("Grant") == consent.GRANT_TYPEHASH()
    assert typehash("Categories") == consent.CATEGORIES_TYPEHASH()
    assert typehash("Revoke") == consent.REVOKE_TYPEHASH()
    assert NAMED_SCOPES == consent.NAMED_SCOPES()
    assert encode_type("Grant").startswith("Grant(address patient,address grantee,Categories categories,bool mayAmend,"
                                           "string purpose,uint64 grantEndsAt,uint256 nonce,uint64 signatureValidUntil)")


def test_domain_names_the_deployment_and_matches_the_contracts_separator(network: Any, consent: Any, chain: Any) -> None:
    _, name, version, chain_id, contract, _, _ = consent.eip712Domain()
    assert (name, version, chain_id, contract) == (CONSENT_DOMAIN_NAME, "2", chain.chain_id, consent.address)
    domain = Domain(name, chain_id, contract, version)
    typed = grant_typed_data(domain, patient=PATIENT, grantee=GRANTEE, scopes=2, may_amend=False, purpose=PURPOSE,
                             grant_ends_at=1, nonce=0, signature_valid_until=1)
    assert encode_typed_data(full_message=typed).header == consent.DOMAIN_SEPARATOR()


def test_categories_are_the_scope_names_in_bit_order() -> None:
    assert [bit for _, bit in CATEGORY_FIELDS] == sorted(Scope, key=int)
    assert dict(CATEGORY_FIELDS)["mentalHealth"] is Scope.MENTAL_HEALTH
    assert categories(int(Scope.LAB | Scope.GENOMICS)) == {name: name in ("lab", "genomics") for name, _ in CATEGORY_FIELDS}


@settings(max_examples=200, derandomize=True, database=None)
@given(scopes=st.integers(min_value=0, max_value=NAMED_SCOPES).map(lambda n: n & NAMED_SCOPES),
       may_amend=st.booleans(), nonce=st.integers(0, 2**40 - 1), ends=st.integers(0, 2**64 - 1))
def test_a_document_round_trips_through_the_strict_parser(scopes: int, may_amend: bool, nonce: int, ends: int) -> None:
    domain = Domain(CONSENT_DOMAIN_NAME, 31337, "0x" + "33" * 20)
    typed = grant_typed_data(domain, patient=PATIENT, grantee=GRANTEE, scopes=scopes, may_amend=may_amend,
                             purpose=PURPOSE, grant_ends_at=ends, nonce=nonce, signature_valid_until=ends)
    parsed_domain, message = parse_typed_data(typed)
    assert parsed_domain == domain and scopes_of(typed["message"]["categories"]) == scopes
    assert rebuild_typed_data(parsed_domain, message) == typed


def test_unnamed_scope_bits_and_foreign_types_are_refused() -> None:
    with pytest.raises(InvalidRecord, match="no category name"):
        categories(1 << 14)
    domain = Domain(CONSENT_DOMAIN_NAME, 31337, "0x" + "33" * 20)
    typed = grant_typed_data(domain, patient=PATIENT, grantee=GRANTEE, scopes=2, may_amend=False, purpose=PURPOSE,
                             grant_ends_at=5, nonce=0, signature_valid_until=5)
    renamed = {**typed, "types": {**typed["types"], "Grant": [
        {**f, "name": "readOnly"} if f["name"] == "mayAmend" else f for f in typed["types"]["Grant"]]}}
    with pytest.raises(InvalidRecord, match="types are not"):
        parse_typed_data(renamed)
    assert keccak(text=encode_type("Revoke")) == typehash("Revoke")


def test_domain_names_must_fit_a_wallet_line_and_an_immutable() -> None:
    assert check_domain_name("Northside Health (production)") == "Northside Health (production)"
    for bad in ("", "   ", "x" * 32, "é" * 16, "line\nbreak"):
        with pytest.raises(InvalidRecord, match="1 to 31 bytes"):
            check_domain_name(bad)
    assert len(default_domain_name("a-very-long-network-name:with-a-provider").encode()) <= 31
