"""Audit: who did what to whose records, and when, from chain events; live monitoring with alert
rules; FHIR R4 AuditEvent and Consent exports.

    index = AuditIndex.open(chain, state_dir)      # local SQLite copy of every event, resumable
    index.sync()                                   # one eth_getLogs per page over all contracts
    index.trail(patient=address)                   # or record=, actor=, member=
    export_bundle(index, patient=address)          # FHIR Bundle of AuditEvent + Consent
    Monitor.for_rpc(url, deployment, state_dir=d, config=load_config(path)).run()
"""

from ehr_client.audit.config import (
    BreakGlass,
    FailedAttempts,
    MonitorConfig,
    Polling,
    ReadAfterRevoke,
    ReadBurst,
    SuspendedActivity,
    Webhook,
    WorkingHours,
    config_from_mapping,
    load_config,
)
from ehr_client.audit.decode import ContractSource, deployment_sources
from ehr_client.audit.errors import WebhookRejected, WebhookUnavailable
from ehr_client.audit.facts import Facts, register_event
from ehr_client.audit.fhir_export import audit_event, bundle, consent, export_bundle
from ehr_client.audit.index import AuditIndex, SyncReport, index_path
from ehr_client.audit.monitor import Monitor, StepResult, connect, print_alert, scan_alerts
from ehr_client.audit.queries import AuditEntry, AuditRow
from ehr_client.audit.rules import RULES, Alert, evaluate, evaluate_blocks, most_severe
from ehr_client.audit.table import alerts_table, audit_rows_table
from ehr_client.audit.webhook import WebhookSender

__all__ = [
    "RULES", "Alert", "AuditEntry", "AuditIndex", "AuditRow", "BreakGlass", "ContractSource", "Facts", "FailedAttempts", "Monitor",
    "MonitorConfig", "Polling", "ReadAfterRevoke", "ReadBurst", "StepResult", "SuspendedActivity", "SyncReport",
    "Webhook", "WebhookRejected", "WebhookSender", "WebhookUnavailable", "WorkingHours", "alerts_table",
    "audit_event", "audit_rows_table", "bundle", "config_from_mapping", "connect", "consent", "deployment_sources", "evaluate",
    "evaluate_blocks", "export_bundle", "index_path", "load_config", "most_severe", "print_alert", "register_event",
    "scan_alerts",
]
