"""The objects one `ehr` invocation builds (lazily, at most once) from its :class:`Settings`.

Precedence for every setting: command-line option, then environment variable, then the state
that `ehr node up` left in the home directory, then the built-in default. The home layout is
described in :mod:`ehr_client.cli._settings`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests
import typer
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.cli._settings import WALLET_NAME, Settings, StoreKind, read_node_state
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import ChainUnavailable, ConfigError, EHRError
from ehr_client.keys import DEFAULT_SCRYPT_N, Keystore
from ehr_client.storage import BlobStore, IpfsStore, LocalStore
from ehr_client.storage.fragmented import FragmentedStore
from ehr_client.storage.ipfs import DEFAULT_API_URL
from ehr_client.storage.nodes import load_storage_config, storage_config_path

__all__ = ["WALLET_NAME", "AppContext", "Settings", "StoreKind", "app_context", "read_node_state"]

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
SCRYPT_N_ENV = "EHR_SCRYPT_N"  # test-only: a low scrypt cost for keys written by the CLI
PASSWORD_ENV = "EHR_PASSWORD"


@dataclass
class AppContext:
    """Builds, once per invocation, what a command needs; nothing touches the network until asked."""

    settings: Settings
    _password: str | None = field(default=None, repr=False)
    _chain: ChainClient | None = None
    _store: BlobStore | None = None
    _identity: Identity | None = field(default=None, repr=False)
    _account: LocalAccount | None = field(default=None, repr=False)

    # --- configuration ----------------------------------------------------------------------

    @property
    def rpc_url(self) -> str:
        if self.settings.rpc:
            return self.settings.rpc
        for engine in ("anvil", "geth"):  # `ehr node up` runs one of them
            state = read_node_state(self.settings.node_dir, engine)
            if state and isinstance(state.get("rpc_url"), str):
                return str(state["rpc_url"])
        return DEFAULT_RPC_URL

    @property
    def ipfs_api(self) -> str:
        if self.settings.ipfs_api:
            return self.settings.ipfs_api
        state = read_node_state(self.settings.node_dir, "kubo")
        if state and isinstance(state.get("api_url"), str):
            return str(state["api_url"])
        return DEFAULT_API_URL

    @property
    def store_dir(self) -> Path:
        return (self.settings.store_dir or self.settings.home_dir / "store").expanduser()

    @property
    def deployment_file(self) -> Path:
        """The deployment file in use: the first of the documented places that exists."""
        return self.settings.deployment_file()

    @property
    def journal_dir(self) -> Path:
        return self.settings.home_dir / "journal" / self.settings.wallet

    # --- secrets ----------------------------------------------------------------------------

    @staticmethod
    def stdin_is_terminal() -> bool:
        return sys.stdin is not None and sys.stdin.isatty()

    def password(self, *, new: bool = False) -> str:
        """--password-file, else $EHR_PASSWORD, else a hidden prompt (confirmed when `new`)."""
        if self._password is not None:
            return self._password
        if self.settings.password_file is not None:
            try:
                text = self.settings.password_file.expanduser().read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read the password file {self.settings.password_file}: {exc.strerror}") from None
            self._password = text.splitlines()[0] if text else ""
        elif os.environ.get(PASSWORD_ENV) is not None:
            self._password = os.environ[PASSWORD_ENV]
        elif self.stdin_is_terminal():
            label = f"Password for wallet {self.settings.wallet!r}"
            self._password = str(typer.prompt(label, hide_input=True, confirmation_prompt=new))
        else:
            raise ConfigError(f"no keystore password: set {PASSWORD_ENV}, pass --password-file, or run in a terminal")
        return self._password

    def keystore(self, wallet: str | None = None, *, writing: bool = False) -> Keystore:
        """The keystore of `wallet` (default --wallet). $EHR_SCRYPT_N lowers the scrypt cost of keys
        written from now on: for tests only, and said so on stderr whenever a key is written."""
        raw = os.environ.get(SCRYPT_N_ENV)
        try:
            scrypt_n = int(raw) if raw else DEFAULT_SCRYPT_N
        except ValueError:
            raise ConfigError(f"{SCRYPT_N_ENV}={raw!r} is not an integer") from None
        if writing and scrypt_n < DEFAULT_SCRYPT_N:
            typer.echo(f"warning: {SCRYPT_N_ENV}={scrypt_n} weakens the key encryption (test-only setting)", err=True)
        return Keystore(self.settings.keystore_dir(wallet), scrypt_n=scrypt_n)

    def account(self) -> LocalAccount:
        """The wallet alone (one key derivation): enough to send transactions and sign."""
        if self._identity is not None:
            return self._identity.account
        if self._account is None:
            self._account = self.keystore().load_wallet(self.settings.wallet, self.password())
        return self._account

    def identity(self) -> Identity:
        """The wallet and every X25519 key version (old versions open old records)."""
        if self._identity is None:
            self._identity = Identity.from_keystore(self.keystore(), self.settings.wallet, self.password())
        return self._identity

    def wallet_address(self, wallet: str) -> str | None:
        """The address of a wallet kept under this home, read without its password."""
        for info in self.keystore(wallet).list():
            if info.kind == "secp256k1" and info.name == wallet:
                return info.address
        return None

    def known_wallets(self) -> dict[str, str]:
        """Address -> wallet name of every wallet kept under this --home (labels for tables)."""
        names: dict[str, str] = {}
        keys_dir = self.settings.home_dir / "keys"
        if not keys_dir.is_dir():
            return names
        for directory in sorted(keys_dir.iterdir()):
            if not WALLET_NAME.fullmatch(directory.name):
                continue
            try:
                address = self.wallet_address(directory.name)
            except EHRError:
                continue
            if address is not None:
                names[address] = directory.name
        return names

    # --- chain and store ----------------------------------------------------------------------

    def deployment(self) -> Deployment:
        path = self.deployment_file
        if not path.is_file():
            looked = ", ".join(str(p) for p in self.settings.deployment_candidates())
            raise ConfigError(
                f"no deployment file for network {self.settings.network!r}: looked for {looked}; deploy one with "
                f"`ehr --network {self.settings.network} --wallet ADMIN deploy` (run `ehr doctor` to check the setup), "
                "or point --deployment FILE (or --home) at an existing one"
            )
        return Deployment.load(path)

    def chain(self) -> ChainClient:
        if self._chain is None:
            deployment = self.deployment()
            deployment.check_client_compatible()
            chain = ChainClient(self.rpc_url, deployment)
            registry = deployment.address("RecordRegistry")
            try:
                code = chain.w3.eth.get_code(to_checksum_address(registry))
            except (requests.ConnectionError, requests.Timeout):
                raise ChainUnavailable(f"cannot reach the chain node at {self.rpc_url}; start it (`ehr node up`)") from None
            if not code:
                raise ConfigError(
                    f"no contract at {registry} on the node at {self.rpc_url} (was the node reset?); "
                    f"redeploy with `ehr --network {self.settings.network} deploy`"
                )
            self._chain = chain
        return self._chain

    def store(self) -> BlobStore:
        if self._store is None:
            if self.settings.store is StoreKind.ipfs:
                self._store = IpfsStore(self.ipfs_api)
            elif self.settings.store is StoreKind.fragmented:
                config = load_storage_config(storage_config_path(home=self.settings.home_dir))
                self._store = FragmentedStore.from_config(config)
            else:
                self._store = LocalStore(self.store_dir)
        return self._store

    def client(self, *, store: BlobStore | None = None) -> EHRClient:
        return EHRClient(self.chain(), store or self.store(), self.identity(), state_dir=self.journal_dir)

    def reader(self) -> EHRClient:
        """A client for public chain facts and store checks only: its identity is throwaway, so no
        password is asked. Never use it to write, sign or decrypt."""
        return EHRClient(self.chain(), self.store(), Identity.generate(), state_dir=self.journal_dir)

    def close(self) -> None:
        if isinstance(self._store, (IpfsStore, FragmentedStore)):
            self._store.close()


def app_context(ctx: typer.Context) -> AppContext:
    """The AppContext of this invocation, built on first use from the Settings the root callback stored
    (the root stays light: it never imports this module)."""
    root = ctx.find_root()
    obj = root.obj
    if isinstance(obj, AppContext):
        return obj
    context = AppContext(obj if isinstance(obj, Settings) else Settings())
    root.obj = context
    root.call_on_close(context.close)
    return context
