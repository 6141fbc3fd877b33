"""Anvil's evicted block states stay out of ~/.foundry and go when their Anvil goes.

Anvil moves the states it evicts from memory to ~/.foundry/anvil/tmp and never deletes them; a day
of test runs left 72 GB there and a CI run died of a full disk. These tests run real Anvils with
HOME and TMPDIR pointed at empty folders, mine enough blocks to evict states, and look at the disk.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_client.dev.node import AnvilNode

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = ROOT / "tools" / "bin" / "anvil"
_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")
BLOCKS = 0x400  # well past what Anvil keeps in memory


def _rpc(url: str, method: str, params: list) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        reply = json.loads(answer.read())
    assert "error" not in reply, reply
    return reply["result"]


def _mine_and_read_history(url: str) -> None:
    _rpc(url, "anvil_mine", [hex(BLOCKS)])
    balance = _rpc(url, "eth_getBalance", ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0x5"])
    assert int(str(balance), 16) > 0, "an old block's state must still be readable"


def _foundry_states(home: Path) -> list[Path]:
    return list((home / ".foundry").rglob("anvil-state-*"))


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setenv("EHR_ANVIL_STATES_DIR", str(tmpdir / "states"))
    yield dict(os.environ)


class _WrappedAnvil:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen([str(WRAPPER), "--host", "127.0.0.1", "--port", "0"], env=env,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = _LISTENING.search(log.read_text(errors="replace"))
            if match:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return
            assert self.process.poll() is None, log.read_text()
            time.sleep(0.05)
        raise AssertionError(f"Anvil did not start: {log.read_text()}")

    def states_dir(self, tmpdir: Path) -> Path:
        namespace = "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())
        return tmpdir / "states" / f"pid-ns-{namespace}" / str(self.process.pid)

    def stop(self, sig: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)


def test_wrapped_anvil_keeps_states_in_its_own_folder_and_the_next_start_clears_the_dead(
        isolated_env: dict[str, str], tmp_path: Path) -> None:
    tmpdir, home = Path(isolated_env["TMPDIR"]), Path(isolated_env["HOME"])
    killed = _WrappedAnvil(isolated_env, tmp_path / "killed.log")
    alive: _WrappedAnvil | None = None
    try:
        _mine_and_read_history(killed.url)
        killed_dir = killed.states_dir(tmpdir)
        assert any(killed_dir.iterdir()), "evicted states go to the Anvil's own folder"
        alive = _WrappedAnvil(isolated_env, tmp_path / "alive.log")
        _mine_and_read_history(alive.url)
        alive_dir = alive.states_dir(tmpdir)
        killed.stop(signal.SIGKILL)  # no chance to clean up after itself
        assert killed_dir.exists()

        after = _WrappedAnvil(isolated_env, tmp_path / "after.log")
        after.stop(signal.SIGTERM)
        assert not killed_dir.exists(), "the next start deletes a dead Anvil's states"
        assert any(alive_dir.iterdir()), "a live Anvil's states are left alone"
        _mine_and_read_history(alive.url)
        assert _foundry_states(home) == []
    finally:
        killed.stop(signal.SIGKILL)
        if alive is not None:
            alive.stop(signal.SIGTERM)


def test_wrapper_passes_version_through(isolated_env: dict[str, str]) -> None:
    done = subprocess.run([str(WRAPPER), "--version"], env=isolated_env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("anvil"), done
    assert not (Path(isolated_env["TMPDIR"]) / "states").exists()


def test_anvil_node_deletes_its_states_when_it_stops(isolated_env: dict[str, str], tmp_path: Path) -> None:
    node = AnvilNode(log_path=tmp_path / "node" / "anvil.log")
    with node:
        _mine_and_read_history(node.rpc_url)
        assert any(node.evicted_states_dir.iterdir())
    assert not node.evicted_states_dir.exists()
    assert _foundry_states(Path(isolated_env["HOME"])) == []
