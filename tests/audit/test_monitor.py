"""Each monitor rule fires on its scripted trigger and stays silent otherwise; restarts neither miss
nor repeat alerts; the webhook receives them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ehr_client.audit import Monitor, MonitorConfig, config_from_mapping, most_severe, scan_alerts
from ehr_client.audit.rules import (
    BREAK_GLASS,
    FAILED_ATTEMPT,
    READ_AFTER_REVOKE,
    READ_BURST,
    SUSPENDED_ACTIVITY,
    WORKING_HOURS,
)

ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# Anvil stamps blocks with the wall clock: tests that count every alert switch the clock rule off.
NO_CLOCK = config_from_mapping({"working_hours": {"enabled": False}})


def _monitor(suite, state_dir, *, config=None, from_block=None, sink=None):
    sink = [] if sink is None else sink
    monitor = Monitor(suite, state_dir=state_dir, config=config or MonitorConfig(), emit=sink.append,
                      from_block=from_block)
    return monitor, sink


def _alerts(suite, tmp_path, start, config=None, name="monitor"):
    monitor, sink = _monitor(suite, tmp_path / name, config=config, from_block=start)
    with monitor:
        assert monitor.catch_up() == sink
    return sink


def _fired(alerts, rule):
    return [a for a in alerts if a.rule == rule]


def _next_local(after: int, zone: ZoneInfo, *, hour: int, weekday: int | None = None) -> int:
    """The first whole `hour` o'clock (on `weekday`, if given) in `zone` after unix time `after`."""
    moment = datetime.fromtimestamp(after, zone).replace(hour=hour, minute=0, second=0, microsecond=0)
    while moment.timestamp() <= after or (weekday is not None and moment.weekday() != weekday):
        moment += timedelta(days=1)
    return int(moment.timestamp())


def test_working_hours_alert_fires_for_member_reads_outside_hours_only(script, suite, tmp_path):
    zone = ZoneInfo("America/New_York")
    script.register()
    record = script.add_record()
    script.grant("doctor")
    start = script.block() + 1
    night = _next_local(script.chain.now() + 60, zone, hour=3)
    morning = _next_local(night, zone, hour=10)
    saturday = _next_local(morning, zone, hour=10, weekday=5)

    script.set_next_timestamp(night)
    at_night = script.read("doctor", record)
    script.set_next_timestamp(night + 1)
    script.read("patient", record)  # patients read their own records at any hour
    script.set_next_timestamp(morning)
    script.read("doctor", record)
    script.set_next_timestamp(saturday)
    on_saturday = script.read("doctor", record)

    every_day = config_from_mapping({"working_hours": {"start": "09:00", "end": "17:00",
                                                       "timezone": "America/New_York", "days": ALL_DAYS}})
    fired = _fired(_alerts(suite, tmp_path, start, every_day, "every-day"), WORKING_HOURS)
    assert [a.tx_hash for a in fired] == [at_night.tx_hash]
    assert fired[0].details["localTime"].startswith(datetime.fromtimestamp(night, zone).date().isoformat() + "T03:00")

    weekdays = config_from_mapping({"working_hours": {"start": "09:00", "end": "17:00",
                                                      "timezone": "America/New_York"}})
    fired = _fired(_alerts(suite, tmp_path, start, weekdays, "weekdays"), WORKING_HOURS)
    assert [a.tx_hash for a in fired] == [at_night.tx_hash, on_saturday.tx_hash]


def test_read_burst_fires_once_when_a_member_exceeds_the_limit(script, suite, tmp_path):
    config = config_from_mapping({"read_burst": {"max_reads": 3, "window_seconds": 600}})
    script.register()
    record = script.add_record()
    script.grant("doctor")
    start = script.block() + 1
    reads = [script.read("doctor", record) for _ in range(5)]
    for _ in range(5):
        script.read("patient", record)
    script.increase_time(601)
    script.read("doctor", record)  # the window has moved on: one read in it

    fired = _fired(_alerts(suite, tmp_path, start, config), READ_BURST)
    assert [a.tx_hash for a in fired] == [reads[3].tx_hash]
    assert fired[0].actor == script.address("doctor") and fired[0].details["reads"] == 4


def test_break_glass_requests_confirmations_and_emergency_reads_alert(script, suite, tmp_path):
    script.register()
    record = script.add_record()
    start = script.block() + 1
    script.grant("lab")
    script.read("lab", record)  # an ordinary read
    opened = script.open_break_glass("hospital")
    confirmed = script.confirm_break_glass("doctor", "hospital")
    emergency = script.read("hospital", record)

    fired = _fired(_alerts(suite, tmp_path, start), BREAK_GLASS)
    assert [(a.tx_hash, a.details["event"]) for a in fired] == [
        (opened.tx_hash, "BreakGlassRequested"), (confirmed.tx_hash, "BreakGlassActivated"),
        (emergency.tx_hash, "AccessRequested")]
    assert all(a.severity == "high" and a.patient == script.address("patient") for a in fired)

    no_reads = config_from_mapping({"break_glass": {"include_reads": False}})
    assert len(_fired(_alerts(suite, tmp_path, start, no_reads, "no-reads"), BREAK_GLASS)) == 2


def test_read_after_revocation_alerts_for_reads_and_reverted_attempts(script, suite, tmp_path):
    config = config_from_mapping({"read_after_revoke": {"within_seconds": 300}})
    script.register()
    record = script.add_record()
    start = script.block() + 1
    script.grant("doctor")
    script.read("doctor", record)  # before any revocation
    script.revoke("doctor")
    attempted = script.failed_read("doctor", record)
    script.grant("doctor")
    script.read("doctor", record)  # granted again: legitimate
    script.revoke("doctor")
    script.open_break_glass("doctor")
    script.confirm_break_glass("hospital", "doctor")
    emergency = script.read("doctor", record)  # revoked, but in through break-glass
    script.increase_time(3700)  # past the revocation window and the one-hour break-glass access
    script.failed_read("doctor", record)

    fired = _fired(_alerts(suite, tmp_path, start, config), READ_AFTER_REVOKE)
    assert [a.tx_hash for a in fired] == [attempted, emergency.tx_hash]
    assert fired[0].log_index is None and "reverted" in fired[0].message
    assert fired[1].details["secondsAfterRevocation"] <= 300


def test_suspended_member_activity_alerts_for_success_and_failure(script, suite, tmp_path):
    script.register()
    record = script.add_record()
    script.grant("doctor")
    start = script.block() + 1
    script.publish_key("doctor")  # active member: fine
    script.suspend("doctor")
    published = script.publish_key("doctor")  # the key registry takes anyone's key, even a suspended member's
    attempted = script.failed_read("doctor", record)
    script.reinstate("doctor")
    script.read("doctor", record)

    alerts = _alerts(suite, tmp_path, start)
    fired = _fired(alerts, SUSPENDED_ACTIVITY)
    assert [(a.tx_hash, a.details["outcome"]) for a in fired] == [(published.tx_hash, "succeeded"),
                                                                  (attempted, "reverted")]
    assert all(a.actor == script.address("doctor") for a in fired)


def test_failed_attempts_alert_with_the_decoded_error(script, suite, tmp_path):
    script.register()
    record = script.add_record()
    start = script.block() + 1
    denied = script.failed_read("stranger", record)
    script.read("patient", record)
    no_grant = script.failed("patient", script.chain.consent.functions.revoke(script.address("doctor")))

    fired = _fired(_alerts(suite, tmp_path, start), FAILED_ATTEMPT)
    assert [(a.tx_hash, a.details["error"]) for a in fired] == [(denied, "ConsentUnauthorized"),
                                                                (no_grant, "ConsentNoGrant")]
    assert fired[0].actor == script.address("stranger") and fired[0].patient == script.address("patient")


def _scripted_alerts(script, record):
    script.open_break_glass("hospital")
    script.failed_read("stranger", record)


def test_monitor_restarted_mid_stream_neither_misses_nor_repeats(script, suite, tmp_path):
    script.register()
    record = script.add_record()
    start = script.block() + 1
    _scripted_alerts(script, record)

    first, first_sink = _monitor(suite, tmp_path / "restart", config=NO_CLOCK, from_block=start)
    with first:
        first.catch_up()
    script.confirm_break_glass("doctor", "hospital")
    script.failed_read("insurer", record)
    second, second_sink = _monitor(suite, tmp_path / "restart", config=NO_CLOCK, from_block=0)  # first run only
    with second:
        second.catch_up()
        assert second.catch_up() == []

    straight = _alerts(suite, tmp_path, start, NO_CLOCK, name="straight")
    assert first_sink and second_sink
    assert [a.id for a in first_sink + second_sink] == [a.id for a in straight]
    assert len({a.id for a in straight}) == len(straight)


def test_alert_whose_output_crashed_is_printed_once_after_restart(script, suite, tmp_path):
    script.register()
    record = script.add_record()
    start = script.block() + 1
    _scripted_alerts(script, record)
    printed: list[str] = []

    class Crash(Exception):
        pass

    def crash_on_first(alert):
        if not printed and not getattr(crash_on_first, "crashed", False):
            crash_on_first.crashed = True
            raise Crash
        printed.append(alert.id)

    crashing = Monitor(suite, state_dir=tmp_path / "crash", config=NO_CLOCK, emit=crash_on_first, from_block=start)
    with crashing, pytest.raises(Crash):
        crashing.step()
    restarted, sink = _monitor(suite, tmp_path / "crash", config=NO_CLOCK)
    with restarted:
        restarted.catch_up()
        stored = restarted.alerts()
    assert [a.rule for a in stored] == [BREAK_GLASS, FAILED_ATTEMPT]
    assert [a.id for a in sink] == [a.id for a in stored]


def test_webhook_receives_every_alert_once_even_after_it_was_down(script, suite, tmp_path, webhook_server):
    script.register()
    record = script.add_record()
    start = script.block() + 1
    _scripted_alerts(script, record)
    config = config_from_mapping({"working_hours": {"enabled": False},
                                  "webhook": {"url": webhook_server.url, "retries": 1, "backoff_seconds": 0.01}})
    webhook_server.fail_next(2)  # both attempts for the first alert fail: it stays queued

    monitor, sink = _monitor(suite, tmp_path / "hooked", config=config, from_block=start)
    with monitor:
        monitor.catch_up()
        assert sink and webhook_server.accepted == []
        monitor.step()  # nothing new on chain; the queue is retried
    assert [body["id"] for body in webhook_server.accepted] == [a.id for a in sink]
    assert webhook_server.accepted == [a.to_json() for a in sink]


def test_scan_alerts_evaluates_a_whole_history_for_the_demo(script, suite, tmp_path):
    script.register()
    record = script.add_record()
    _scripted_alerts(script, record)
    alerts = scan_alerts(suite, state_dir=tmp_path / "demo", config=NO_CLOCK)
    assert [a.rule for a in alerts] == [BREAK_GLASS, FAILED_ATTEMPT]
    shown = most_severe(alerts)
    assert shown is alerts[0]
    line = shown.summary()
    assert "[high] break_glass" in line and shown.tx_hash in line and "\n" not in line
