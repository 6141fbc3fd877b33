import json

import pytest
import typer
from typer.testing import CliRunner

from ehr_client.batch import import_directory
from ehr_client.cli._context import AppContext, Settings
from ehr_client.cli._errors import ErrorReportingGroup
from ehr_client.cli.batch import import_records
from ehr_client.errors import AccessDenied, InvalidRecord
from ehr_client.keys import Keystore
from ehr_client.records import canonicalize
from tests.batch.conftest import LAB, condition, observation
from tests.blob_files import blob_cids

PASSWORD = "correct horse battery staple"


def test_import_directory_writes_each_file_in_batches_and_reports_progress(people, writer_lab, fhir_dir):
    patient = people["patient"]
    directory = fhir_dir(7)
    seen = []

    result = import_directory(writer_lab, patient.address, directory, batch_size=3, progress=seen.append)

    assert [p.name for p in result.files] == [f"obs-{i:04d}.json" for i in range(7)]
    assert [len(b.records) for b in result.summary.batches] == [3, 3, 1]
    assert [p.processed for p in seen if p.anchored < 7][-1] == 7 and seen[-1].anchored == 7
    assert all(p.total == 7 for p in seen)
    assert [a.processed for a in seen] == sorted(a.processed for a in seen)
    for i, record_id in enumerate(result.summary.record_ids):
        assert patient.read_record(record_id).data == canonicalize(observation(i))


def test_import_directory_lists_every_invalid_file_before_storing_anything(people, writer_lab, fhir_dir, store):
    directory = fhir_dir(4)
    (directory / "obs-0002.json").write_text(json.dumps({"resourceType": "Observation", "code": {"text": "x"}}))
    (directory / "obs-0003.json").write_text("not json")
    with pytest.raises(InvalidRecord, match=r"2 of 4 files are invalid, nothing was imported.*obs-0002\.json: "
                                            r".*Observation\.status.*obs-0003\.json"):
        import_directory(writer_lab, people["patient"].address, directory)
    assert blob_cids(store) == []


def test_import_directory_skips_invalid_files_on_request(people, writer_lab, fhir_dir):
    patient = people["patient"]
    directory = fhir_dir(3)
    (directory / "obs-0001.json").write_text("not json")
    result = import_directory(writer_lab, patient.address, directory, skip_invalid=True)
    assert [p.name for p in result.files] == ["obs-0000.json", "obs-0002.json"]
    assert [f.path.name for f in result.skipped] == ["obs-0001.json"]
    assert len(patient.list_records(patient.address)) == 2


def test_import_directory_refuses_a_scope_without_grant_in_its_last_file_before_storing_anything(
    people, writer_lab, fhir_dir, store
):
    patient = people["patient"]
    directory = fhir_dir(4)
    (directory / "zz-condition.json").write_text(json.dumps(condition(1)))
    patient.revoke(writer_lab.address)
    patient.grant(writer_lab.address, LAB, access="amend", expires_at=patient.chain.now() + 3600, share_keys=False)
    with pytest.raises(AccessDenied, match="may not write records .* in scope conditions"):
        import_directory(writer_lab, patient.address, directory)
    assert blob_cids(store) == []


@pytest.fixture
def ehr(suite, ids, store, tmp_path, monkeypatch):
    """`ehr record import` mounted on a root command that builds its AppContext like the real CLI."""
    home = tmp_path / "home"
    keystore = Keystore(home / "keys" / "lab", scrypt_n=16)
    keystore.import_wallet("lab", ids["lab"].account.key, PASSWORD)
    keystore.generate_encryption_key("x25519", password=PASSWORD)
    monkeypatch.setenv("EHR_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    monkeypatch.setenv("EHR_PASSWORD", PASSWORD)
    suite.deployment.save(tmp_path / "deployments" / f"{suite.deployment.network}.json")

    app = typer.Typer(cls=ErrorReportingGroup)

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = AppContext(Settings(network=suite.deployment.network, rpc=suite.rpc_url, store_dir=store.root,
                                      home=home, wallet="lab"))

    app.command("import")(import_records)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["import", *args])


def test_cli_import_prints_each_file_record_and_batch(people, writer_lab, fhir_dir, ehr):
    patient = people["patient"]
    result = ehr(str(fhir_dir(5)), "--patient", patient.address, "--batch-size", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["file"] for r in report["records"]] == [f"obs-{i:04d}.json" for i in range(5)]
    assert [b["records"] for b in report["batches"]] == [2, 2, 1] and report["stored"] == 5
    located = patient.list_records(patient.address)
    assert ["0x" + r.record_id.hex() for r in located] == [r["recordId"] for r in report["records"]]


def test_cli_import_without_grant_exits_3_with_one_line(people, fhir_dir, ehr):
    result = ehr(str(fhir_dir(2)), "--patient", people["patient"].address)
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and "may not write" in result.stderr


def test_cli_import_rejects_batch_size_out_of_range(people, fhir_dir, ehr):
    assert ehr(str(fhir_dir(1)), "--patient", people["patient"].address, "--batch-size", "4096").exit_code == 2
