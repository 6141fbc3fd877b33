"""Attacks on finding records by id through the portal's unauthenticated views (GET /api/versions/{id},
GET /api/batched/{id}): `ehr portal` as a real process, its node reached through an observing JSON-RPC
relay (tests/redteam_perf/rpc_tap.py) on the CLI world's own Anvil grown by 3,000 blocks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.cli.conftest import cli_env
from tests.portal.conftest import RELAYER, Portal, anvil, cli, home, start_portal, stop_portal, world  # noqa: F401
from tests.redteam_perf.rpc_tap import RpcTap

GROWN = 3_000  # blocks mined after the world: a whole-chain scan asks for about this many
RANGE = 256


def _rpc(url: str, method: str, *params: Any) -> Any:
    answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                           timeout=300).json()
    assert "error" not in answer, answer
    return answer["result"]


@pytest.fixture(scope="module")
def tapped_portal(world: dict[str, str], home: Path, anvil: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Portal, RpcTap]]:
    """The CLI world's chain grown by `GROWN` blocks, and a portal whose node is reached through a tap."""
    _rpc(anvil.rpc_url, "anvil_mine", hex(GROWN))
    tap = RpcTap(anvil.rpc_url)
    running = start_portal(home, cli_env(home, tap.url), tmp_path_factory.mktemp("portal"), "--relayer",
                           wallet=RELAYER)
    try:
        yield running, tap
    finally:
        stop_portal(running.process)
        tap.close()


def test_an_unauthenticated_caller_cannot_make_the_portal_scan_the_chain_per_made_up_id(
        tapped_portal: tuple[Portal, RpcTap], anvil: Any) -> None:
    """Failed on cfd5c32 (lineage.versions and successors asked the logs from the deployment: 18,114 blocks for 6
    ids); main's 4e4d4f8 fixed it."""
    portal, tap = tapped_portal
    head = int(_rpc(anvil.rpc_url, "eth_blockNumber"), 16)
    tap.reset()
    answers = [portal.get(f"/api/versions/0x{os.urandom(32).hex()}").status_code for _ in range(3)]
    answers += [portal.post(f"/api/erase/0x{os.urandom(32).hex()}").status_code for _ in range(3)]
    assert answers == [404] * 6
    assert tap.blocks_asked(head) <= 6 * RANGE, f"6 made-up ids asked the logs of {tap.blocks_asked(head)} blocks"


def test_the_portal_refuses_made_up_batched_ids_without_scanning_the_chain(
        tapped_portal: tuple[Portal, RpcTap], anvil: Any) -> None:
    portal, tap = tapped_portal
    head = int(_rpc(anvil.rpc_url, "eth_blockNumber"), 16)
    tap.reset()
    answers = [portal.get(f"/api/batched/0x{os.urandom(32).hex()}").status_code for _ in range(3)]
    assert answers == [404, 404, 404]
    assert tap.blocks_asked(head) <= 3 * RANGE, f"3 made-up ids asked the logs of {tap.blocks_asked(head)} blocks"


def test_an_unauthenticated_caller_cannot_make_the_portal_scan_the_chain_per_made_up_patient(
        tapped_portal: tuple[Portal, RpcTap], anvil: Any) -> None:
    """Failed on 25cc4c9 (two scans from the deployment per address, 18,114 blocks for 3); main's
    93524f1 asks isPatient first."""
    portal, tap = tapped_portal
    head = int(_rpc(anvil.rpc_url, "eth_blockNumber"), 16)
    tap.reset()
    answers = [portal.get(f"/api/records/0x{os.urandom(20).hex()}").status_code for _ in range(3)]
    assert all(status in (200, 404) for status in answers), answers
    assert tap.blocks_asked(head) <= 3 * RANGE, f"3 made-up patients asked the logs of {tap.blocks_asked(head)} blocks"
