"""The monitor survives its chain node going away and coming back on the same URL (own Anvil with
--state, so the chain persists across the restart): no alert is missed and none repeats."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from eth_account import Account

from ehr_client.audit import Monitor, config_from_mapping
from ehr_client.audit.rules import FAILED_ATTEMPT
from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.dev.node import DEV_MNEMONIC, find_anvil_binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FixedPortAnvil:
    """Anvil on one loopback port, its chain dumped to `state` on stop and loaded on start."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.state = workdir / "anvil-state.json"
        self.log = workdir / "anvil.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [str(find_anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", "31337",
                "--accounts", "3", "--mnemonic", DEV_MNEMONIC, "--state", str(self.state)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(lambda: _answers(self.url), "anvil to listen")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: the group is this node alone
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
    except requests.RequestException:
        return False
    return True


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[FixedPortAnvil]:
    anvil = FixedPortAnvil(tmp_path)
    anvil.start()
    yield anvil
    anvil.stop()


def test_monitor_survives_node_restart_without_missing_or_repeating(node, tmp_path, caplog):
    Account.enable_unaudited_hdwallet_features()
    deployer, stranger = (Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in (0, 1))
    deployment = deploy_suite(node.url, deployer, network="outage", governors=[deployer.address], threshold=1)

    def reverted_read(n: int) -> str:
        """A read of an unknown record sent without the client's checks: it reverts on chain."""
        chain = ChainClient(node.url, deployment)
        fn = chain.consent.functions.requestAccess(n.to_bytes(32, "big"))
        tx = fn.build_transaction({"from": stranger.address, "gas": 200_000, "chainId": chain.chain_id,
                                   "nonce": chain.w3.eth.get_transaction_count(stranger.address, "pending")})
        tx_hash = chain.w3.eth.send_raw_transaction(stranger.sign_transaction(tx).raw_transaction)
        assert chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)["status"] == 0
        return tx_hash.to_0x_hex()

    config = config_from_mapping({"working_hours": {"enabled": False},
                                  "monitor": {"poll_seconds": 0.05, "backoff_max_seconds": 0.4}})
    sink: list = []
    monitor = Monitor.for_rpc(node.url, deployment, state_dir=tmp_path / "monitor", config=config, emit=sink.append)
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, kwargs={"stop": stop}, daemon=True)
    caplog.set_level(logging.WARNING, logger="ehr_client.audit")
    thread.start()
    try:
        before = reverted_read(1)
        _wait(lambda: len(sink) == 1, "the first alert")

        node.stop()
        _wait(lambda: "cannot reach the chain node" in caplog.text, "the monitor to notice the outage")
        node.start()
        after = reverted_read(2)
        _wait(lambda: len(sink) == 2, "the alert after the restart")
        time.sleep(0.3)  # a few more polls: nothing may repeat
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    with monitor:
        stored = monitor.alerts()
    assert [(a.rule, a.tx_hash) for a in sink] == [(FAILED_ATTEMPT, before), (FAILED_ATTEMPT, after)]
    assert [a.id for a in stored] == [a.id for a in sink]
