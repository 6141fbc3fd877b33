"""`ehr custodian enroll` and the `record erase` command function, driven through Typer in process."""

import json
import os
from pathlib import Path

import typer
from typer.testing import CliRunner

from ehr_client.cli import custodian as custodian_cli
from ehr_client.cli import storage as storage_cli
from ehr_client.cli._context import AppContext, Settings
from ehr_client.cli._errors import EXIT_DENIED, ErrorReportingGroup
from ehr_client.client import EHRClient
from ehr_client.custodian.messages import CustodianDomain
from ehr_client.sharing.remote import ErasureReceipt
from ehr_client.keys import Keystore
from ehr_client.records import Scope
from tests.constants import DAY
from tests.custodian.conftest import PASSWORD, fragments


def _cli(env, home: Path, wallet: str) -> tuple[typer.Typer, dict[str, str]]:
    """A root like `ehr`'s, for one wallet, with the custodian commands under test."""
    keystore = Keystore(home / "keys" / wallet, scrypt_n=2**4)
    keystore.import_wallet(wallet, bytes(env.identities[wallet].account.key), PASSWORD)
    keystore.generate_encryption_key("x25519", password=PASSWORD)
    root = typer.Typer(cls=ErrorReportingGroup)

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = AppContext(Settings(network="custodian-test", rpc=env.chain.rpc_url, home=home, wallet=wallet,
                                      store_dir=env.store.root))

    root.add_typer(custodian_cli.app, name="custodian")
    root.command("erase")(custodian_cli.erase)
    variables = {"EHR_PASSWORD": PASSWORD, "EHR_DEPLOYMENTS_DIR": str(env.state.parent / "deployments"),
                 "EHR_CUSTODIANS": ",".join(env.urls)}
    return root, variables


def test_enroll_refuses_a_non_member_with_one_line_and_exit_code(env, running, tmp_path):
    root, variables = _cli(env, tmp_path, "stranger")

    result = CliRunner().invoke(root, ["custodian", "enroll"], env=variables)

    assert result.exit_code == EXIT_DENIED
    assert result.output.count("error:") == 1 and "not an active consortium member" in result.output


def test_erase_command_prints_verifiable_receipts(env, running, fhir_record, tmp_path):
    record_id = fhir_record()
    env.sharing("patient").grant(env.clients["doctor"].address, int(Scope.LAB), expires_at=env.chain.now() + DAY)
    root, variables = _cli(env, tmp_path, "patient")

    result = CliRunner().invoke(root, ["erase", "0x" + record_id.hex(), "--yes", "--json"], env=variables)

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    domain = CustodianDomain(env.chain.chain_id, env.chain.consent.address)
    receipts = [ErasureReceipt.from_json(r) for r in doc["receipts"]]
    assert len(receipts) == 3 and doc["custodiansUnreachable"] == []
    for receipt in receipts:
        receipt.verify(domain)
        assert receipt.record_id == record_id and receipt.remaining == 0
    assert fragments(env, record_id) == [0, 0, 0]


def test_erase_command_names_each_reissued_key_share_for_its_grantee(env, running, fhir_record, observation, tmp_path):
    patient, doctor = env.clients["patient"], env.clients["doctor"]
    erased = fhir_record()
    other = {**observation, "valueQuantity": {"value": 6.1, "unit": "mmol/L"}}
    kept = patient.add_record(patient.address, other).record_id
    # The grant made from the same wallet home the CLI uses: its shares.log is what erase re-issues from.
    wallet = EHRClient(env.chain, env.store, env.identities["patient"], state_dir=tmp_path / "journal" / "patient")
    grant = wallet.grant(doctor.address, int(Scope.LAB), expires_at=env.chain.now() + DAY)
    assert grant.key_share is not None and grant.shared_records == 2
    root, variables = _cli(env, tmp_path, "patient")

    result = CliRunner().invoke(root, ["erase", "0x" + erased.hex(), "--yes", "--json"], env=variables)

    assert result.exit_code == 0, result.output
    (reissued,) = json.loads(result.output)["reissuedShares"]
    assert (reissued["grantee"], reissued["old"], reissued["dropped"]) == (doctor.address, grant.key_share, 1)
    assert not env.store.has(grant.key_share)
    assert doctor.read_record(kept, key_share=reissued["new"]).info.record_id == kept

    text = CliRunner().invoke(root, ["erase", "0x" + kept.hex(), "--yes"], env=variables)

    assert text.exit_code == 0, text.output
    assert f"key share {reissued['new']} for {doctor.address} unpinned (it held only erased records)" in text.output
    assert not env.store.has(reissued["new"])


def test_gc_command_reports_what_an_interrupted_erasure_left(env, fhir_record, observation, tmp_path):
    patient, doctor = env.clients["patient"], env.clients["doctor"]
    erased = fhir_record()
    other = {**observation, "valueQuantity": {"value": 6.2, "unit": "mmol/L"}}
    kept = patient.add_record(patient.address, other).record_id
    wallet = EHRClient(env.chain, env.store, env.identities["patient"], state_dir=tmp_path / "journal" / "patient")
    share = wallet.grant(doctor.address, int(Scope.LAB), expires_at=env.chain.now() + DAY).key_share
    patient.tombstone(patient.get_record(erased))  # the erasure dies here, before its unpin
    cid = patient.get_record(erased).cid
    for blob in (cid, share):
        path = env.store.path_for(blob)
        os.utime(path, (path.stat().st_atime - 2 * DAY, path.stat().st_mtime - 2 * DAY))
    root, variables = _cli(env, tmp_path, "patient")
    root.add_typer(storage_cli.app, name="storage")

    result = CliRunner().invoke(root, ["storage", "gc", "--grace", "1d", "--json"], env=variables)  # a dry run

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert cid in doc["erased"] and cid in doc["garbage"] and share in doc["unfinishedErasures"]
    assert share not in doc["garbage"] and env.store.has(cid) and env.store.has(share)

    text = CliRunner().invoke(root, ["storage", "gc", "--grace", "1d"], env=variables)

    assert text.exit_code == 0, text.output
    assert "left by erasures interrupted after their tombstone" in text.output
    unfinished = next(line for line in text.output.splitlines() if line.startswith("erasure unfinished: key shares"))
    assert share in unfinished and "run `ehr record erase RECORD` again" in text.output
    assert doctor.read_record(kept, key_share=share).info.record_id == kept
