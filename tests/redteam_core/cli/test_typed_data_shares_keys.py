"""`ehr grant --print-typed-data` only prints the EIP-712 grant for the patient to sign in another wallet,
it used to seal the data keys of every record in scope to the grantee and stores that key share first
(and prints its CID). The patient may never sign; the grantee who is handed the CID (or reads the shared
store) already holds every key, with no grant in force and no access request on chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehr_client.errors import EHRError
from ehr_client.keyshare import KeyShare
from ehr_client.storage import LocalStore
from tests.cli.conftest import Cli


def _shares_to(store: LocalStore, grantee: str) -> set[str]:
    found = set()
    for cid, _ in store.blobs():
        data = store.get(cid)
        if not data.startswith(b"{"):
            continue
        try:
            share = KeyShare.from_bytes(data)
        except EHRError:
            continue
        if share.grantee.lower() == grantee.lower():
            found.add(str(cid))
    return found


def test_printing_the_grant_to_sign_shares_no_keys(cli: Cli, world: dict[str, str], home: Path,
                                                   lab_record: str) -> None:
    store = LocalStore(home / "store")
    before = _shares_to(store, world["doctor"])
    result = cli("grant", "doctor", "--scopes", "lab", "--print-typed-data", wallet="patient")
    assert '"primaryType": "Grant"' in result.stdout
    assert _shares_to(store, world["doctor"]) == before
    assert "ehr share" in " ".join(result.stderr.split())  # says how to share once the grant is relayed
