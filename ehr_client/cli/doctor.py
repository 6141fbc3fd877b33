"""`ehr doctor`: what is missing or broken in this setup, and the command that fixes each.

One line per check, in the order a new user meets them: toolchain, node, deployment, store,
keystore. A check that cannot run because an earlier one failed says so instead of guessing.
Exit 0 only if nothing failed (optional parts that are absent are notes, not failures).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
import typer
from rich.markup import escape
from rich.table import Table

from ehr_client.chain.deployment import Deployment
from ehr_client.cli._context import AppContext, app_context
from ehr_client.cli._output import JsonFlag, out, print_json
from ehr_client.cli._settings import StoreKind
from ehr_client.claims.toolchain import package_version
from ehr_client.errors import ConfigError, EHRError, ZkToolError
from ehr_client.dev.node import REPO_ROOT, find_anvil_binary
from ehr_client.storage.ipfs import api_base_url
from ehr_client.storage.kubo import find_kubo_binary
from ehr_client.storage.nodes import load_storage_config, storage_config_path

GETH_BIN_ENV = "EHR_GETH_BIN"
DEFAULT_WALLET = "default"  # the root option's default
_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "fail", "note" (optional and absent) or "skip" (an earlier check failed)
    detail: str
    fix: str | None = None


def _version(binary: Path, *args: str) -> str:
    try:
        done = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"does not run ({type(exc).__name__})"
    line = (done.stdout or done.stderr).strip().splitlines()
    return line[0] if line else f"exit {done.returncode}"


def toolchain(app_: AppContext) -> list[Check]:
    checks = []
    try:
        anvil = find_anvil_binary()
        checks.append(Check("anvil", "ok", f"{anvil} ({_version(anvil, '--version')})"))
    except ConfigError as exc:
        checks.append(Check("anvil", "fail", str(exc), "make install"))
    needs_kubo = app_.settings.store is StoreKind.ipfs
    try:
        kubo = find_kubo_binary()
        checks.append(Check("kubo", "ok", f"{kubo} ({_version(kubo, 'version')})"))
    except ConfigError as exc:
        checks.append(Check("kubo", "fail" if needs_kubo else "note",
                            str(exc) if needs_kubo else "not built (needed only for --store ipfs)", "make kubo"))
    try:
        tools = ", ".join(f"{name} {package_version(name)}" for name in ("circom2", "circomlib", "snarkjs"))
        checks.append(Check("zk tools", "ok", tools))
    except ZkToolError:
        checks.append(Check("zk tools", "note", "circom2/snarkjs not installed (needed only for zero-knowledge "
                                                "claims, `ehr claim`)", "make install"))
    geth = os.environ.get(GETH_BIN_ENV) or shutil.which("geth")
    built = REPO_ROOT / ".build" / "bin" / "geth"
    if geth is None and built.is_file():
        geth = str(built)
    if geth is not None:
        checks.append(Check("geth", "ok", f"{geth} ({_version(Path(geth), 'version')})"))
    else:
        checks.append(Check("geth", "note", "not installed (needed only for a multi-validator chain)"))
    return checks


def _rpc(url: str, method: str) -> Any:
    response = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=_TIMEOUT)
    return response.json()["result"]


def node(app_: AppContext) -> tuple[Check, int | None]:
    url = app_.rpc_url
    try:
        chain_id = int(_rpc(url, "eth_chainId"), 16)
        height = int(_rpc(url, "eth_blockNumber"), 16)
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        return Check("node", "fail", f"no chain node answers at {url} ({type(exc).__name__})",
                     "ehr node up" if app_.settings.rpc is None else "start the node, or fix --rpc / EHR_RPC_URL"), None
    return Check("node", "ok", f"{url}: chain {chain_id}, block {height}"), chain_id


def deployment(app_: AppContext, chain_id: int | None) -> Check:
    settings = app_.settings
    path = app_.deployment_file
    deploy_cmd = f"ehr --network {settings.network} --wallet ADMIN deploy"
    if not path.is_file():
        looked = ", ".join(str(p) for p in settings.deployment_candidates())
        return Check("deployment", "fail", f"no deployment file for network {settings.network!r} (looked for {looked})",
                     deploy_cmd)
    try:
        found = Deployment.load(path)
        found.check_client_compatible()
    except ConfigError as exc:
        return Check("deployment", "fail", str(exc), f"{deploy_cmd} --force")
    if chain_id is None:
        return Check("deployment", "skip", f"{path} found; cannot check it without a node")
    if found.chain_id != chain_id:
        return Check("deployment", "fail", f"{path} is for chain {found.chain_id}, the node runs chain {chain_id}",
                     f"{deploy_cmd} --force (or fix --rpc / --network)")
    url = app_.rpc_url
    missing = []
    for name, address in found.contracts.items():
        try:
            response = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_getCode",
                                                "params": [address, "latest"]}, timeout=_TIMEOUT)
            code = response.json()["result"]
        except (requests.RequestException, ValueError, KeyError, TypeError):
            code = None
        if not code or code == "0x":
            missing.append(name)
    if missing:
        return Check("deployment", "fail", f"{path}: no contract code for {', '.join(missing)} on this node "
                                           "(was the node reset?)", f"{deploy_cmd} --force")
    return Check("deployment", "ok", f"{path}: {len(found.contracts)} contracts with code on chain {chain_id}")


def store(app_: AppContext) -> Check:
    kind = app_.settings.store
    if kind is StoreKind.local:
        directory = app_.store_dir
        parent = directory if directory.exists() else directory.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            return Check("store", "fail", f"local store {directory} is not writable", f"chmod u+w {parent}")
        return Check("store", "ok", f"local store {directory}")
    if kind is StoreKind.ipfs:
        url = app_.ipfs_api
        try:
            response = requests.post(f"{api_base_url(url)}/api/v0/version", timeout=_TIMEOUT)
            version = response.json().get("Version", "?")
        except (requests.RequestException, ValueError, AttributeError) as exc:
            return Check("store", "fail", f"no Kubo API answers at {url} ({type(exc).__name__})",
                         "ehr node up --ipfs" if app_.settings.ipfs_api is None else "start Kubo, or fix --ipfs-api")
        return Check("store", "ok", f"Kubo {version} at {url}")
    path = storage_config_path(home=app_.settings.home_dir)
    try:
        config = load_storage_config(path)
    except EHRError as exc:
        return Check("store", "fail", str(exc), f"write {path} (see README: Storage across several nodes)")
    return Check("store", "ok", f"fragmented store, {config.k} of {config.n} ({path})")


def keystore(app_: AppContext) -> Check:
    wallet = app_.settings.wallet
    known = app_.known_wallets()
    if not known:
        return Check("keystore", "fail", f"no wallets under {app_.settings.home_dir / 'keys'}",
                     f"ehr --wallet {wallet} keys new")
    names = ", ".join(sorted(known.values()))
    try:
        address = app_.wallet_address(wallet)
    except EHRError as exc:
        return Check("keystore", "fail", f"wallet {wallet!r}: {exc}", f"ehr --wallet {wallet} keys list")
    if address is None and wallet == DEFAULT_WALLET:  # no --wallet given: nothing is wrong yet
        return Check("keystore", "note", f"wallets: {names}; pass --wallet NAME (or set EHR_WALLET) to act as one")
    if address is None:
        return Check("keystore", "fail", f"no wallet {wallet!r} under this home (have: {names})",
                     f"pass --wallet NAME, or ehr --wallet {wallet} keys new")
    return Check("keystore", "ok", f"wallet {wallet} = {address} (have: {names})")


def run_checks(app_: AppContext) -> list[Check]:
    checks = toolchain(app_)
    node_check, chain_id = node(app_)
    checks += [node_check, deployment(app_, chain_id), store(app_), keystore(app_)]
    return checks


_STYLE = {"ok": "[green]ok[/]", "fail": "[red]FAIL[/]", "note": "[yellow]note[/]", "skip": "[dim]skip[/]"}


def doctor(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Check the toolchain, node, deployment, store and keystore; say what to run to fix them."""
    app_ = app_context(ctx)
    checks = run_checks(app_)
    healthy = all(c.status != "fail" for c in checks)
    if json_:
        print_json({"ok": healthy, "home": str(app_.settings.home_dir), "network": app_.settings.network,
                    "checks": [asdict(c) for c in checks]})
    else:
        table = Table("check", "status", "detail", "fix", title=f"ehr doctor: home {app_.settings.home_dir}, "
                                                                  f"network {app_.settings.network}")
        for c in checks:
            table.add_row(c.name, _STYLE[c.status], escape(c.detail), escape(c.fix or "") if c.status == "fail" else "")
        out().print(table)
        failed = [c for c in checks if c.status == "fail"]
        out().print("all good" if healthy else f"{len(failed)} problem(s); run the commands in the fix column, "
                                               "then `ehr doctor` again")
    if not healthy:
        raise typer.Exit(1)
