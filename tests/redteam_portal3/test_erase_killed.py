"""The portal is killed (SIGKILL) while /api/erase re-issues key shares, then started again, and the
page retries, as the checklist's crash class asks: is anything lost?"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ehr_client.client import EHRClient
from ehr_client.records import Scope
from tests.cli.conftest import NETWORK, Cli, cli_env
from tests.portal.conftest import Portal, start_portal, stop_portal
from tests.redteam_portal3.shares import DAY, lab_results, store_page_share

SHARES = 40


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_a_retry_after_the_portal_was_killed_mid_erase_names_every_reissued_share(
        portal: Portal, cli: Cli, observation: Path, client_of: Callable[[str], EHRClient], tmp_path: Path,
        home: Path, anvil: Any) -> None:
    patient, doctor = client_of("patient"), client_of("doctor")
    erased, kept = lab_results(cli, observation, tmp_path, 2)
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    shares = {store_page_share(portal, patient, doctor.address, [erased, kept]) for _ in range(SHARES)}
    log = home / "portal" / NETWORK / "keyshares" / f"{patient.address}.log"
    before = _lines(log)
    patient.tombstone(patient.get_record(erased))

    (tmp_path / "first").mkdir()
    victim = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path / "first")  # the same state directory
    answered: list[httpx.Response | Exception] = []

    def page_call() -> None:
        try:
            answered.append(httpx.post(victim.url + f"/api/erase/0x{erased.hex()}", timeout=60))
        except httpx.HTTPError as exc:
            answered.append(exc)

    caller = threading.Thread(target=page_call)
    caller.start()
    deadline = time.monotonic() + 60
    while _lines(log) < before + 2 and time.monotonic() < deadline:  # two re-issued: the first one's old unpinned
        time.sleep(0.001)
    os.killpg(victim.process.pid, signal.SIGKILL)
    victim.process.wait()
    caller.join()
    if answered and isinstance(answered[0], httpx.Response):
        pytest.skip("the erase finished before the kill landed; nothing to retry")

    (tmp_path / "second").mkdir()
    restarted = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path / "second")
    try:
        retry = restarted.post(f"/api/erase/0x{erased.hex()}")
    finally:
        stop_portal(restarted.process)
    assert retry.status_code == 200, retry.text
    told = {r["old"] for r in retry.json()["reissuedShares"]}
    assert told == shares, f"{len(shares - told)} of {len(shares)} re-issued shares are told to nobody"
