"""Signers nobody here wrote (MetaMask's eth-sig-util V4, ethers v6, viem; pinned in package.json)
sign the typed data our CLI printed, our relay accepts their signatures, they recover ours, and a
changed chain id, contract, version or field is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.chain.eip712 import scopes_of, sign_typed_data
from ehr_client.errors import ConsentRefused
from tests.cli.conftest import CAST, Cli, dev_key
from tests.consent.conftest import patient_key

LIBS = ("eth-sig-util", "ethers", "viem")


def _printed(cli: Cli, *args: str) -> dict[str, Any]:
    return dict(json.loads(cli(*args, "--print-typed-data", wallet="patient").stdout))


def test_each_js_signer_signs_what_the_cli_printed_and_the_relay_accepts_it(
    cli: Cli, world: dict[str, str], js_signers: Any, tmp_path: Path
) -> None:
    for lib in LIBS:
        typed = _printed(cli, "grant", "doctor", "--scopes", "lab,imaging", "--purpose", "payment", "--no-share-keys")
        signed = js_signers(typed, patient_key())["signatures"]
        # byte-identical to ours: deterministic ECDSA (RFC 6979) over the same digest
        assert signed[lib] == "0x" + sign_typed_data(patient_key(), typed).hex()
        file = tmp_path / f"{lib}.json"
        file.write_text(json.dumps(typed))
        relayed = cli.json("relay", str(file), "--signature", signed[lib], wallet="hospital")
        assert relayed["tx"] is not None and relayed["nonce"] == typed["message"]["nonce"]
        revocation = _printed(cli, "revoke", "doctor")
        file.write_text(json.dumps(revocation))
        revoked = cli.json("relay", str(file), "--signature", js_signers(revocation, patient_key())["signatures"][lib],
                           wallet="hospital")
        assert revoked["relayed"] == "revocation"


def test_each_js_signer_recovers_our_python_signatures(
    cli: Cli, world: dict[str, str], js_signers: Any
) -> None:
    for typed in (_printed(cli, "grant", "doctor", "--scopes", "all", "--access", "amend", "--no-share-keys"),
                  _printed(cli, "revoke", "doctor")):
        ours = "0x" + sign_typed_data(patient_key(), typed).hex()
        recovered = js_signers(typed, patient_key(), ours)["recovered"]
        assert {lib: recovered[lib].lower() for lib in LIBS} == dict.fromkeys(LIBS, world["patient"].lower())


def test_js_signatures_over_a_changed_chain_contract_version_or_field_are_refused(
    cli: Cli, world: dict[str, str], js_signers: Any, home: Path, tmp_path: Path
) -> None:
    typed = _printed(cli, "grant", "doctor", "--scopes", "lab", "--no-share-keys")
    changes: list[tuple[str, dict[str, Any]]] = [
        ("chain id", {**typed, "domain": {**typed["domain"], "chainId": 1}}),
        ("contract", {**typed, "domain": {**typed["domain"], "verifyingContract": world["stranger"]}}),
        ("version", {**typed, "domain": {**typed["domain"], "version": "1"}}),
    ]
    longer = json.loads(json.dumps(typed))
    longer["message"]["grantEndsAt"] += 86400 * 365
    for label, changed in changes:
        signature = js_signers(changed, patient_key())["signatures"]["viem"]
        file = tmp_path / "changed.json"
        file.write_text(json.dumps(changed))
        refused = cli("relay", str(file), "--signature", signature, wallet="hospital", expect=3)
        assert "signed for" in refused.stderr, label
    # a field changed after signing: the signature no longer recovers to the patient
    signature = js_signers(typed, patient_key())["signatures"]["ethers"]
    file = tmp_path / "longer.json"
    file.write_text(json.dumps(longer))
    refused = cli("relay", str(file), "--signature", signature, wallet="hospital", expect=3)
    assert "not by patient" in refused.stderr
    # and the chain itself refuses what a relayer that skipped those checks would send
    chain = ChainClient(cli.env["EHR_RPC_URL"], Deployment.load(home / "deployments" / "cli-test.json"))
    relayer = Account.from_key(dev_key(CAST.index("hospital")))
    for label, changed in [*changes, ("field", longer)]:
        m = changed["message"]
        signature = js_signers(changed if label != "field" else typed, patient_key())["signatures"]["eth-sig-util"]
        fn = chain.consent.functions.grantBySig(m["patient"], m["grantee"], scopes_of(m["categories"]), m["mayAmend"],
                                                m["purpose"], m["grantEndsAt"], m["signatureValidUntil"],
                                                bytes.fromhex(signature[2:]))
        with pytest.raises(ConsentRefused, match="not patient"):
            chain.transact(relayer, fn, action="relay unchecked")
