"""`KuboDaemon`: run a real Kubo (IPFS) daemon that talks only to loopback.

Used by the tests and by `ehr node up`. The repo is initialised with Kubo's `test` profile and
then locked down: API and gateway on 127.0.0.1, no bootstrap peers, no mDNS, no routing, no
relays, no NAT port mapping, no telemetry, and by default `ipfs daemon --offline`, which starts
no libp2p networking at all.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from ehr_client.errors import ConfigError, StorageUnavailable

KUBO_BIN_ENV = "EHR_KUBO_BIN"
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILT_KUBO = Path(".build") / "bin" / "ipfs"

_LOOPBACK = "127.0.0.1"
_LOG_NAME = "daemon.log"
_READY = "Daemon is ready"
_API_LINE = re.compile(r"RPC API server listening on /ip4/([0-9.]+)/tcp/(\d+)")
_GATEWAY_LINE = re.compile(r"Gateway server listening on /ip4/([0-9.]+)/tcp/(\d+)")
# Every IPv4 range except 127.0.0.0/8, and all of IPv6: libp2p refuses to dial these.
_NON_LOOPBACK_FILTERS = [
    "/ip4/0.0.0.0/ipcidr/2",
    "/ip4/64.0.0.0/ipcidr/3",
    "/ip4/96.0.0.0/ipcidr/4",
    "/ip4/112.0.0.0/ipcidr/5",
    "/ip4/120.0.0.0/ipcidr/6",
    "/ip4/124.0.0.0/ipcidr/7",
    "/ip4/126.0.0.0/ipcidr/8",
    "/ip4/128.0.0.0/ipcidr/1",
    "/ip6/::/ipcidr/0",
]
_QUIET_ENV = {"IPFS_TELEMETRY": "off", "DO_NOT_TRACK": "1"}


def find_kubo_binary(*, repo_root: Path = REPO_ROOT) -> Path:
    """`$EHR_KUBO_BIN`, else `<repo_root>/.build/bin/ipfs`, else `ipfs` on PATH."""
    configured = os.environ.get(KUBO_BIN_ENV)
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ConfigError(f"{KUBO_BIN_ENV}={configured} is not an executable file; point it at a Kubo `ipfs` binary")
    built = repo_root / BUILT_KUBO
    if built.is_file() and os.access(built, os.X_OK):
        return built
    on_path = shutil.which("ipfs")
    if on_path:
        return Path(on_path)
    raise ConfigError(
        f"Kubo binary not found: run tools/build-kubo.sh to build it into {built}, "
        f"set {KUBO_BIN_ENV} to an `ipfs` binary, or put `ipfs` on PATH"
    )


def _section(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def loopback_config(config: dict[str, Any], *, api_port: int, gateway_port: int, offline: bool) -> dict[str, Any]:
    """Return `config` (a Kubo config document) rewritten to reach nothing but loopback."""
    cfg = copy.deepcopy(config)
    addresses = _section(cfg, "Addresses")
    addresses["API"] = f"/ip4/{_LOOPBACK}/tcp/{api_port}"
    addresses["Gateway"] = f"/ip4/{_LOOPBACK}/tcp/{gateway_port}"
    addresses["Swarm"] = [] if offline else [f"/ip4/{_LOOPBACK}/tcp/0"]
    addresses["Announce"] = []
    addresses["AppendAnnounce"] = []
    cfg["Bootstrap"] = []
    _section(cfg, "Peering")["Peers"] = []
    _section(_section(cfg, "Discovery"), "MDNS")["Enabled"] = False
    _section(cfg, "Routing")["Type"] = "none"
    cfg["Routing"]["DelegatedRouters"] = []
    _section(cfg, "AutoConf")["Enabled"] = False
    _section(cfg, "AutoTLS")["Enabled"] = False
    _section(cfg, "AutoNAT")["ServiceMode"] = "disabled"
    _section(cfg, "Provide")["Enabled"] = False
    _section(cfg, "DNS")["Resolvers"] = {}
    _section(cfg, "Ipns")["DelegatedPublishers"] = []
    gateway = _section(cfg, "Gateway")
    gateway["NoFetch"] = True
    gateway["NoDNSLink"] = True
    swarm = _section(cfg, "Swarm")
    swarm["DisableNatPortMap"] = True
    swarm["AddrFilters"] = list(_NON_LOOPBACK_FILTERS)
    _section(swarm, "RelayClient")["Enabled"] = False
    _section(swarm, "RelayService")["Enabled"] = False
    _section(_section(cfg, "Plugins"), "Plugins")["telemetry"] = {"Disabled": True, "Config": {"Mode": "off"}}
    return cfg


class KuboDaemon:
    """A Kubo daemon on its own repo, reachable only on 127.0.0.1.

    Ports 0 (the default) let the kernel choose free ports; the real ones are read back from the
    daemon's output and exposed as `api_url` and `gateway_url`. The repo is created and
    initialised if it holds no Kubo config yet; an existing repo is reused. `detach=True` starts
    the daemon in a session of its own, so it outlives the process that started it (`ehr node up`).
    """

    def __init__(
        self,
        repo: Path | str,
        *,
        binary: Path | None = None,
        api_port: int = 0,
        gateway_port: int = 0,
        offline: bool = True,
        startup_timeout: float = 30.0,
        detach: bool = False,
    ) -> None:
        self.repo = Path(repo)
        self.binary = binary if binary is not None else find_kubo_binary()
        self.api_port = api_port
        self.gateway_port = gateway_port
        self.offline = offline
        self.startup_timeout = startup_timeout
        self.detach = detach
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0
        self._api_url: str | None = None
        self._gateway_url: str | None = None

    def __repr__(self) -> str:
        return f"KuboDaemon(repo={str(self.repo)!r}, api_url={self._api_url!r})"

    @property
    def api_url(self) -> str:
        if self._api_url is None:
            raise StorageUnavailable(f"{self!r} is not running; call start() first")
        return self._api_url

    @property
    def gateway_url(self) -> str:
        if self._gateway_url is None:
            raise StorageUnavailable(f"{self!r} is not running; call start() first")
        return self._gateway_url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.repo / _LOG_NAME

    def start(self) -> KuboDaemon:
        if self.running:
            return self
        self.stop()
        self.repo.mkdir(parents=True, exist_ok=True)
        if not (self.repo / "config").exists():
            self._run_init()
        self._write_config()
        self._launch()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        self._api_url = self._gateway_url = None
        try:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def wait(self, timeout: float | None = None) -> int:
        if self._process is None:
            raise StorageUnavailable(f"{self!r} is not running")
        return self._process.wait(timeout)

    def __enter__(self) -> KuboDaemon:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        return {**os.environ, **_QUIET_ENV, "IPFS_PATH": str(self.repo)}

    def _run_init(self) -> None:
        result = subprocess.run(
            [str(self.binary), "init", "--profile=test", "--empty-repo"],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-2000:]
            raise StorageUnavailable(f"`ipfs init` failed for repo {self.repo} (exit {result.returncode}):\n{output}")

    def _write_config(self) -> None:
        path = self.repo / "config"
        config = json.loads(path.read_text())
        updated = loopback_config(config, api_port=self.api_port, gateway_port=self.gateway_port, offline=self.offline)
        tmp = path.with_name(".config.tmp")
        tmp.write_text(json.dumps(updated, indent=2))
        os.replace(tmp, path)

    def _launch(self) -> None:
        args = [str(self.binary), "daemon"]
        if self.offline:
            args.append("--offline")
        self._log = open(self.log_path, "ab")
        self._log_start = self._log.tell()
        self._process = subprocess.Popen(
            args, env=self._env(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=self.detach,
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            log = self._read_log()
            if _READY in log:
                break
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise StorageUnavailable(f"Kubo daemon exited during start-up (exit {code}):\n{log[-2000:]}")
            if time.monotonic() > deadline:
                raise StorageUnavailable(
                    f"Kubo daemon did not become ready within {self.startup_timeout:g}s:\n{log[-2000:]}"
                )
            time.sleep(0.05)
        self._api_url = _loopback_url(_API_LINE, log, "RPC API")
        self._gateway_url = _loopback_url(_GATEWAY_LINE, log, "gateway")
        try:
            httpx.post(f"{self._api_url}/api/v0/version", timeout=5.0, trust_env=False).raise_for_status()
        except httpx.HTTPError as exc:
            raise StorageUnavailable(
                f"Kubo daemon said it was ready but its API at {self._api_url} fails: {exc}"
            ) from exc

    def _read_log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


def _loopback_url(pattern: re.Pattern[str], log: str, what: str) -> str:
    match = pattern.search(log)
    if match is None:
        raise StorageUnavailable(f"Kubo daemon did not report its {what} address:\n{log[-2000:]}")
    host, port = match.groups()
    if host != _LOOPBACK:
        raise StorageUnavailable(f"Kubo daemon's {what} listens on {host}, not {_LOOPBACK}; refusing to use it")
    return f"http://{host}:{port}"
