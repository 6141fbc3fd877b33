"""Monitor configuration parsing and the webhook sender (against a local HTTP server)."""

from __future__ import annotations

import json

import pytest

from ehr_client.audit import MonitorConfig, WebhookRejected, WebhookSender, WebhookUnavailable, load_config
from ehr_client.errors import ConfigError


def test_toml_and_json_configs_load_the_same_settings(tmp_path):
    toml = tmp_path / "rules.toml"
    toml.write_text('[working_hours]\nstart = "07:30"\nend = "19:00"\ntimezone = "Europe/Berlin"\n'
                    'days = ["mon", "sat"]\n[read_burst]\nmax_reads = 5\nwindow_seconds = 60\n'
                    '[webhook]\nurl = "http://127.0.0.1:9/hook"\nretries = 2\n')
    as_json = tmp_path / "rules.json"
    as_json.write_text(json.dumps({"working_hours": {"start": "07:30", "end": "19:00", "timezone": "Europe/Berlin",
                                                     "days": ["mon", "sat"]},
                                   "read_burst": {"max_reads": 5, "window_seconds": 60},
                                   "webhook": {"url": "http://127.0.0.1:9/hook", "retries": 2}}))
    config = load_config(toml)
    assert config == load_config(as_json)
    assert config.working_hours.weekdays == frozenset({0, 5}) and config.read_burst.max_reads == 5
    assert config.break_glass == MonitorConfig().break_glass  # untouched sections keep their defaults


@pytest.mark.parametrize(("text", "problem"), [
    ("[read_burts]\nmax_reads = 1\n", "unknown sections read_burts"),
    ("[read_burst]\nmax_reads = \"many\"\n", "max_reads = 'many' has the wrong type"),
    ("[read_burst]\nmax_reads = -1\n", "has the wrong type"),
    ("[working_hours]\ntimezone = \"Mars/Olympus\"\n", "unknown timezone 'Mars/Olympus'"),
    ("[working_hours]\nstart = \"8am\"\n", "must be HH:MM"),
    ("[working_hours]\ndays = [\"monday\"]\n", "unknown days"),
    ("[webhook]\nurl = \"ftp://x\"\n", "must start with http:// or https://"),
    ("[read_burst\n", "not valid"),
])
def test_bad_configs_are_refused_with_what_to_fix(tmp_path, text, problem):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="monitor config|not valid") as raised:
        load_config(path)
    assert problem in str(raised.value)


def test_webhook_retries_server_errors_then_delivers(webhook_server):
    webhook_server.fail_next(2)
    with WebhookSender(webhook_server.url, retries=2, backoff=0.01) as sender:
        sender.send({"id": "a-1"})
    assert webhook_server.requests == 3 and webhook_server.accepted == [{"id": "a-1"}]


def test_webhook_gives_up_after_its_retries_and_refuses_client_errors(webhook_server):
    webhook_server.fail_next(3)
    with WebhookSender(webhook_server.url, retries=1, backoff=0.01) as sender:
        with pytest.raises(WebhookUnavailable, match="after 2 attempts"):
            sender.send({"id": "a-2"})
        webhook_server.fail_next(1, status=400)
        with pytest.raises(WebhookRejected, match="HTTP 400"):
            sender.send({"id": "a-3"})
    assert webhook_server.accepted == []


def test_webhook_that_is_not_listening_is_unavailable(tmp_path):
    with WebhookSender("http://127.0.0.1:9/hook", retries=1, backoff=0.01, timeout=1.0) as sender:
        with pytest.raises(WebhookUnavailable, match="ConnectError"):
            sender.send({"id": "a-4"})
