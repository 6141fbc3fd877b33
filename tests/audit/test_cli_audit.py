"""`ehr audit` (show, export --fhir) and `ehr monitor`, mounted on a root like the real `ehr` one."""

from __future__ import annotations

import json

import pytest
import typer
from fhir.resources.R4B.bundle import Bundle
from typer.testing import CliRunner

from ehr_client.chain.deployment import deployment_path
from ehr_client.cli import audit_ext
from ehr_client.cli._context import AppContext, Settings
from ehr_client.cli._errors import ErrorReportingGroup

NETWORK = "audit-cli"


@pytest.fixture
def ehr(suite, rpc_url, tmp_path, monkeypatch):
    """Invoke the audit commands as `ehr --network audit-cli --rpc <anvil> --home <tmp> ...` would."""
    monkeypatch.setenv("EHR_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    suite.deployment.save(deployment_path(NETWORK))
    app = typer.Typer(cls=ErrorReportingGroup, pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = AppContext(Settings(network=NETWORK, rpc=rpc_url, home=tmp_path / "home"))

    app.add_typer(audit_ext.app, name="audit")
    app.command("monitor")(audit_ext.monitor)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def test_audit_shows_a_patients_trail_by_default_and_other_views_by_option(ehr, script):
    script.register()
    record = script.add_record()
    script.grant("doctor")
    script.read("doctor", record)
    patient = script.address("patient")

    shown = ehr("audit", patient, "--json")
    assert shown.exit_code == 0, shown.output
    assert [row["name"] for row in json.loads(shown.stdout)] == [
        "PatientRegistered", "RecordAdded", "AccessGranted", "AccessRequested"]
    by_record = json.loads(ehr("audit", "--record", "0x" + record.hex(), "--json").stdout)
    assert [row["name"] for row in by_record] == ["RecordAdded", "AccessRequested"]
    by_actor = json.loads(ehr("audit", "show", "--actor", script.address("doctor"), "--json").stdout)
    assert [(row["name"], row["patient"]) for row in by_actor] == [("AccessRequested", patient)]
    table = ehr("audit", patient)
    assert table.exit_code == 0 and "registered as patient" in table.stdout and "opened record" in table.stdout


def test_audit_export_writes_a_valid_fhir_bundle(ehr, script, tmp_path):
    script.register()
    script.grant("doctor")
    target = tmp_path / "audit.json"
    result = ehr("audit", "export", script.address("patient"), "--fhir", "--output", str(target))
    assert result.exit_code == 0, result.output
    bundle = Bundle.model_validate_json(target.read_text())
    assert sorted(entry.resource.get_resource_type() for entry in bundle.entry) == [
        "AuditEvent", "AuditEvent", "Consent"]


def test_monitor_once_prints_json_lines_and_resumes_without_repeating(ehr, script, tmp_path):
    script.register()
    record = script.add_record()
    start = script.block() + 1
    script.open_break_glass("hospital")
    failed = script.failed_read("stranger", record)
    config = tmp_path / "rules.toml"
    config.write_text("[working_hours]\nenabled = false\n")

    first = ehr("monitor", "--once", "--config", str(config), "--from-block", str(start))
    assert first.exit_code == 0, first.output
    alerts = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(a["rule"], a["txHash"] == failed) for a in alerts] == [("break_glass", False), ("failed_attempt", True)]
    again = ehr("monitor", "--once", "--config", str(config))
    assert again.exit_code == 0 and again.stdout == ""


def test_monitor_refuses_a_config_with_a_typo_in_one_line(ehr, tmp_path):
    config = tmp_path / "rules.toml"
    config.write_text("[read_burst]\nmax_read = 5\n")
    result = ehr("monitor", "--once", "--config", str(config))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: monitor config: [read_burst] has unknown settings max_read")
    assert len(result.stderr.strip().splitlines()) == 1
