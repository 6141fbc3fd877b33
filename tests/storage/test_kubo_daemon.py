from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ehr_client.errors import ConfigError, StorageUnavailable
from ehr_client.storage.kubo import KUBO_BIN_ENV, KuboDaemon, find_kubo_binary, loopback_config

needs_kubo = pytest.mark.kubo


def _rpc(daemon: KuboDaemon, command: str) -> dict[str, object]:
    response = httpx.post(f"{daemon.api_url}/api/v0/{command}", timeout=10, trust_env=False)
    response.raise_for_status()
    result: dict[str, object] = response.json()
    return result


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@needs_kubo
def test_daemon_serves_api_and_gateway_on_loopback_only(kubo: KuboDaemon) -> None:
    assert kubo.api_url.startswith("http://127.0.0.1:")
    assert kubo.gateway_url.startswith("http://127.0.0.1:")
    config = json.loads((kubo.repo / "config").read_text())
    assert config["Bootstrap"] == []
    assert config["Addresses"]["Swarm"] == []
    assert config["Routing"]["Type"] == "none"
    assert "running in offline mode" in kubo.log_path.read_text()


def test_loopback_config_locks_down_a_default_config() -> None:
    default = {
        "Addresses": {"API": "/ip4/0.0.0.0/tcp/5001", "Swarm": ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/udp/4001/quic-v1"]},
        "Bootstrap": ["/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"],
        "Discovery": {"MDNS": {"Enabled": True}},
        "Plugins": {"Plugins": None},
        "Routing": {"Type": "auto"},
    }
    original = json.dumps(default)
    cfg = loopback_config(default, api_port=5101, gateway_port=0, offline=False)
    assert json.dumps(default) == original
    assert cfg["Addresses"]["API"] == "/ip4/127.0.0.1/tcp/5101"
    assert cfg["Addresses"]["Gateway"] == "/ip4/127.0.0.1/tcp/0"
    assert cfg["Addresses"]["Swarm"] == ["/ip4/127.0.0.1/tcp/0"]
    assert cfg["Bootstrap"] == []
    assert cfg["Discovery"]["MDNS"]["Enabled"] is False
    assert cfg["Routing"]["Type"] == "none"
    assert cfg["Plugins"]["Plugins"]["telemetry"]["Disabled"] is True
    assert "/ip4/127.0.0.0/ipcidr/8" not in cfg["Swarm"]["AddrFilters"]
    assert loopback_config(default, api_port=0, gateway_port=0, offline=True)["Addresses"]["Swarm"] == []


@needs_kubo
def test_online_daemon_listens_and_peers_only_on_loopback(start_kubo: Callable[..., KuboDaemon]) -> None:
    daemon = start_kubo(offline=False)
    listen = _rpc(daemon, "swarm/addrs/listen")["Strings"]
    assert isinstance(listen, list) and listen
    assert all(addr.startswith("/ip4/127.0.0.1/") or addr == "/p2p-circuit" for addr in listen)
    assert not _rpc(daemon, "swarm/peers").get("Peers")


@needs_kubo
def test_stop_ends_the_process_and_is_idempotent(start_kubo: Callable[..., KuboDaemon]) -> None:
    daemon = start_kubo()
    pid = daemon.pid
    assert pid is not None and daemon.running
    daemon.stop()
    daemon.stop()
    assert not daemon.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(StorageUnavailable, match="not running"):
        _ = daemon.api_url


@needs_kubo
def test_context_manager_starts_and_stops(kubo_binary: Path, tmp_path: Path) -> None:
    with KuboDaemon(tmp_path / "repo", binary=kubo_binary) as daemon:
        assert _rpc(daemon, "version")["Version"]
    assert not daemon.running


@needs_kubo
def test_start_fails_clearly_when_repo_is_in_use(start_kubo: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    first = start_kubo(tmp_path / "shared")
    second = KuboDaemon(tmp_path / "shared", binary=first.binary, startup_timeout=20)
    with pytest.raises(StorageUnavailable, match="(?s)exited during start-up.*lock"):
        second.start()
    assert first.running
    assert _rpc(first, "version")["Version"]


def test_find_kubo_binary_prefers_the_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _executable(tmp_path / "my-ipfs")
    monkeypatch.setenv(KUBO_BIN_ENV, str(fake))
    assert find_kubo_binary() == fake


def test_find_kubo_binary_rejects_a_bad_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KUBO_BIN_ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=KUBO_BIN_ENV):
        find_kubo_binary()


def test_find_kubo_binary_uses_the_repo_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KUBO_BIN_ENV, raising=False)
    (tmp_path / ".build" / "bin").mkdir(parents=True)
    built = _executable(tmp_path / ".build" / "bin" / "ipfs")
    assert find_kubo_binary(repo_root=tmp_path) == built


def test_find_kubo_binary_explains_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KUBO_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="tools/build-kubo.sh"):
        find_kubo_binary(repo_root=tmp_path)
