"""`ehr node up|down|status|fund`: a local chain (and, with --ipfs, a Kubo daemon) that outlives the CLI.

The chain is Anvil (default: instant blocks) or, with `--engine geth`, a one-validator geth Clique
chain (a block a second, every acknowledged block on disk through `kill -9`). One at a time.

State lives in `<home>/node/`: `anvil.pid` + `anvil.json` (pid, rpc url), `anvil.log`, the chain
state `anvil-state.json` (Anvil writes it every second and on exit, and reloads it on the next
`up`, so deployments survive a restart; `--fresh` discards it); for geth `geth.json` and the
network folder `geth/` (genesis, key, data directory, log); and for Kubo `kubo.pid` + `kubo.json`, `ipfs/` (repo,
with its daemon.log). Later commands take their default --rpc and --ipfs-api from these files.
`up --ipfs` also records `store.json` ({"store": "ipfs"}): commands under this home then use the
Kubo store unless --store/EHR_STORE says otherwise; it outlives `down` (the records are still
there) and `up --fresh` without --ipfs forgets it (a fresh chain has no records).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from rich.table import Table

from ehr_client.dev import processes as _procs
from ehr_client.cli import _parse
from ehr_client.cli._context import app_context, read_node_state
from ehr_client.cli._settings import StoreKind, remember_store, remembered_store
from ehr_client.cli._output import JsonFlag, err, out, print_json
from ehr_client.errors import ChainUnavailable, ConfigError
from ehr_client.dev.geth import CliqueNetwork, find_geth_binary
from ehr_client.dev.node import AnvilNode, dev_account
from ehr_client.storage.kubo import KuboDaemon, find_kubo_binary

app = typer.Typer(help="Run a local chain (Anvil or geth) and Kubo in the background.", no_args_is_help=True)

_MARKERS = {"anvil": "anvil", "geth": "geth", "kubo": "ipfs"}
ENGINES = ("anvil", "geth")
DEV_ACCOUNTS = 10  # the development mnemonic's first accounts, funded on either engine
FUNDING_WEI = 10**24


def _write_state(node_dir: Path, name: str, state: dict[str, Any]) -> None:
    (node_dir / f"{name}.pid").write_text(f"{state['pid']}\n")
    tmp = node_dir / f".{name}.json.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, node_dir / f"{name}.json")


def _clear_state(node_dir: Path, name: str) -> None:
    for suffix in ("pid", "json"):
        (node_dir / f"{name}.{suffix}").unlink(missing_ok=True)


def _pid(node_dir: Path, name: str) -> int | None:
    state = read_node_state(node_dir, name)
    if state and isinstance(state.get("pid"), int):
        return int(state["pid"])
    try:
        return int((node_dir / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _url(node_dir: Path, name: str) -> str:
    state = read_node_state(node_dir, name) or {}
    return str(state.get("rpc_url") or state.get("api_url") or "?")


def _anvil_up(node_dir: Path, *, fresh: bool) -> None:
    pid = running(node_dir, "anvil")
    if pid is not None:
        if fresh:
            raise ConfigError("the node is running; `ehr node down` first to start it --fresh")
        out().print(f"anvil already running (pid {pid}) at {_url(node_dir, 'anvil')}")
        return
    chain_state = node_dir / "anvil-state.json"
    if fresh:
        chain_state.unlink(missing_ok=True)
    node = AnvilNode(log_path=node_dir / "anvil.log", state_path=chain_state).start()
    _write_state(node_dir, "anvil", {"pid": node.pid, "rpc_url": node.rpc_url, "chain_id": node.chain_id,
                                     "log": str(node.log_path), "state": str(chain_state)})
    out().print(f"anvil up (pid {node.pid}) at {node.rpc_url}; log {node.log_path}")


def _geth_up(wallets: dict[str, str], node_dir: Path, *, fresh: bool) -> None:
    pid = running(node_dir, "geth")
    root = node_dir / "geth"
    if pid is not None:
        if fresh:
            raise ConfigError("the node is running; `ehr node down` first to start it --fresh")
        out().print(f"geth already running (pid {pid}) at {_url(node_dir, 'geth')}")
        return
    find_geth_binary()  # a clear error before anything is written
    if fresh and root.exists():
        shutil.rmtree(root)
    if root.exists():
        network = CliqueNetwork(root, detach=True)
    else:
        dev = [dev_account(i).address for i in range(DEV_ACCOUNTS)]
        alloc = {address: FUNDING_WEI for address in [*dev, *wallets]}
        network = CliqueNetwork.create(root, validators=1, period=1, alloc=alloc, detach=True)
        out().print(f"created a one-validator chain {network.chain_id} under {root}; funded {len(alloc)} account(s)")
    network.start()
    network.wait_for_block(network.head() + 1, timeout=60)
    node = network.validators[0]
    _write_state(node_dir, "geth", {"pid": node.pid, "rpc_url": node.rpc_url, "chain_id": network.chain_id,
                                    "log": str(node.log_path), "network": str(root)})
    out().print(f"geth up (pid {node.pid}) at {node.rpc_url}; log {node.log_path}")


def running(node_dir: Path, name: str) -> int | None:
    """The pid of our `name` process if it still runs."""
    pid = _pid(node_dir, name)
    return pid if pid is not None and _procs.alive(pid, marker=_MARKERS[name]) else None


@app.command("up")
def up(
    ctx: typer.Context,
    ipfs: Annotated[bool, typer.Option("--ipfs", help="Also start a Kubo daemon (loopback only, offline).")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard the saved chain state: start from block 0.")] = False,
    engine: Annotated[str | None, typer.Option(
        "--engine", help="anvil (instant blocks, state written every second) or geth (one Clique validator, a block "
                         "a second, durable through kill -9). Default: geth if this home keeps a geth chain (`--engine "
                         "geth` ran here), else anvil.")] = None,
) -> None:
    """Start the local node(s) in the background; idempotent."""
    context = app_context(ctx)
    node_dir = context.settings.node_dir
    if engine is None:
        engine = "geth" if (node_dir / "geth").is_dir() else "anvil"
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    other = "geth" if engine == "anvil" else "anvil"
    if running(node_dir, other) is not None:
        raise ConfigError(f"a local {other} chain is running; `ehr node down` first (one local chain at a time)")
    node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    binary = find_kubo_binary() if ipfs else None  # fail before starting anything
    if engine == "geth":
        _geth_up(context.known_wallets(), node_dir, fresh=fresh)
    else:
        _anvil_up(node_dir, fresh=fresh)
    if binary is None:
        if fresh:
            remember_store(node_dir, None)
        elif remembered_store(node_dir) is StoreKind.ipfs:
            err().print("note: commands under this home use the Kubo store (recorded by `ehr node up --ipfs`); "
                        "start Kubo with `ehr node up --ipfs`, or pass --store local")
        return
    remember_store(node_dir, StoreKind.ipfs)
    pid = running(node_dir, "kubo")
    if pid is not None:
        out().print(f"kubo already running (pid {pid}) at {_url(node_dir, 'kubo')}")
        return
    daemon = KuboDaemon(node_dir / "ipfs", binary=binary, detach=True).start()
    _write_state(node_dir, "kubo", {"pid": daemon.pid, "api_url": daemon.api_url, "gateway_url": daemon.gateway_url,
                                    "repo": str(daemon.repo), "log": str(daemon.log_path)})
    out().print(f"kubo up (pid {daemon.pid}) at {daemon.api_url}; log {daemon.log_path}")
    err().print("commands under this home now store records on this Kubo node (--store local overrides)")


@app.command("down")
def down(ctx: typer.Context) -> None:
    """Stop the background node(s) and remove their pidfiles (the chain state is kept)."""
    node_dir = app_context(ctx).settings.node_dir
    stopped = False
    for name in ("kubo", "anvil", "geth"):
        pid = running(node_dir, name)
        if pid is not None:
            if name == "geth":
                CliqueNetwork(node_dir / "geth", detach=True).stop()  # SIGTERM: geth closes its database
            elif name == "anvil":
                _procs.stop_group(pid)  # the npm launcher and the native binary
            else:
                _procs.stop_process(pid)
            out().print(f"{name} stopped (pid {pid})")
            stopped = True
        _clear_state(node_dir, name)
    if not stopped:
        err().print("nothing was running")


@app.command("fund")
def fund(
    ctx: typer.Context,
    accounts: Annotated[list[str], typer.Argument(help="Addresses or wallet names under --home.")],
    eth: Annotated[int, typer.Option("--eth", min=1, help="Balance to set, in ether.")] = 100,
) -> None:
    """Give accounts gas money on a LOCAL development node (Anvil's anvil_setBalance)."""
    context = app_context(ctx)
    rpc_url = context.rpc_url
    for text in accounts:
        account = _parse.address(context, text)
        try:
            response = requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance",
                                                    "params": [account, hex(eth * 10**18)]}, timeout=5)
            answer = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ChainUnavailable(f"cannot reach the node at {rpc_url} ({type(exc).__name__}); `ehr node up`") from None
        if "error" in answer:
            raise ConfigError(f"{rpc_url} refused anvil_setBalance: fund is for local Anvil nodes only")
        out().print(f"{text}: {account} now holds {eth} ETH on {rpc_url}")


def _chain_facts(rpc_url: str) -> dict[str, Any]:
    try:
        response = requests.post(rpc_url, json=[
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
        ], timeout=3)
        answers = {item["id"]: int(item["result"], 16) for item in response.json()}
        return {"responding": True, "chainId": answers[1], "blockNumber": answers[2]}
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return {"responding": False}


@app.command("status")
def status(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Show whether the background node(s) run, where, and (for Anvil) the chain height."""
    settings = app_context(ctx).settings
    node_dir = settings.node_dir
    report: dict[str, Any] = {}
    for name in ("anvil", "geth", "kubo"):
        state = read_node_state(node_dir, name) or {}
        pid = running(node_dir, name)
        entry: dict[str, Any] = {"running": pid is not None, "pid": pid,
                                 "url": state.get("rpc_url") or state.get("api_url"), "log": state.get("log")}
        if name != "kubo" and pid is not None and entry["url"]:
            entry.update(_chain_facts(str(entry["url"])))
        report[name] = entry
    store = {"kind": settings.store.value, "recordedByNodeUp": remembered_store(node_dir) is not None}
    if json_:
        print_json({**report, "store": store})
        return
    table = Table("service", "state", "pid", "url", "detail")
    for name, entry in report.items():
        detail = f"chain {entry['chainId']}, block {entry['blockNumber']}" if entry.get("responding") else ""
        table.add_row(name, "[green]running[/]" if entry["running"] else "stopped", str(entry["pid"] or "-"),
                      str(entry["url"] or "-"), detail)
    out().print(table)
    out().print(f"commands use the {store['kind']} store"
                f"{' (recorded by `ehr node up --ipfs`)' if store['recordedByNodeUp'] else ''}")
