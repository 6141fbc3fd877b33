"""`AnvilNode`: a local Anvil chain node on a free loopback port, for the demo and `ehr node up`.

The binary comes from npm (`@foundry-rs/anvil`, see package.json); `$EHR_ANVIL_BIN` overrides it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ehr_client.errors import ChainUnavailable, ConfigError
from ehr_client.dev.processes import stop_group

ANVIL_BIN_ENV = "EHR_ANVIL_BIN"
REPO_ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")
# Anvil's well-known development mnemonic: its accounts are funded on every fresh node.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def dev_account(index: int) -> LocalAccount:
    """Account `index` of the development mnemonic (funded on a fresh Anvil and in the dev geth genesis)."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def find_anvil_binary() -> Path:
    """`$EHR_ANVIL_BIN`, else the project's node_modules/.bin/anvil, else `anvil` on PATH."""
    configured = os.environ.get(ANVIL_BIN_ENV)
    if configured:
        return Path(configured)
    local = REPO_ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return local
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ConfigError(f"Anvil not found: run `make install` (npm ci) or set {ANVIL_BIN_ENV}")


class AnvilNode:
    """Start with `start()` (or `with`), read `rpc_url`, stop with `stop()`; never binds beyond loopback."""

    def __init__(self, *, log_path: Path, state_path: Path | None = None, chain_id: int = 31337,
                 accounts: int = 10) -> None:
        self.log_path = Path(log_path)
        self.state_path = state_path
        self.chain_id = chain_id
        self.accounts = accounts
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def rpc_url(self) -> str:
        if self.port is None:
            raise ChainUnavailable("the Anvil node is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def evicted_states_dir(self) -> Path:
        """Where Anvil moves the block states it evicts from memory (by default ~/.foundry/anvil/tmp, never deleted)."""
        return self.log_path.with_name(self.log_path.name + ".states")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 30.0) -> AnvilNode:
        args = [str(find_anvil_binary()), "--host", "127.0.0.1", "--port", "0", "--chain-id", str(self.chain_id),
                "--accounts", str(self.accounts), "--mnemonic", DEV_MNEMONIC,
                "--cache-path", str(self.evicted_states_dir)]
        shutil.rmtree(self.evicted_states_dir, ignore_errors=True)
        if self.state_path is not None:
            # Anvil writes --state only on a clean exit; dumping it every second bounds what a kill -9
            # loses to the last second, and `ehr record recover` anchors that again (same ids).
            args += ["--state", str(self.state_path), "--state-interval", "1"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.port = int(match.group(1))
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise ChainUnavailable(f"Anvil did not start within {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node (its whole process group) and reap it."""
        process, self._process, self.port = self._process, None, None
        if process is None or process.poll() is not None:
            return
        stop_group(process.pid, timeout=timeout)
        process.wait(timeout=timeout)
        shutil.rmtree(self.evicted_states_dir, ignore_errors=True)

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
