"""`ehr network up|status|down|sync-validators`: a local consortium chain of geth Clique validators.

State lives in `<home>/network/` (see :mod:`ehr_client.dev.geth`): the genesis, each node's data
directory, keys and pidfile. The nodes outlive the CLI; `down` stops them and keeps the chain, so
the next `up` continues it. `up` funds every wallet under --home (and each `--fund` address) in the
genesis, so governors can deploy and vote at once.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware

from ehr_client.chain import governance as gov
from ehr_client.cli import _parse
from ehr_client.cli._context import AppContext, app_context
from ehr_client.cli._output import JsonFlag, err, out, print_json
from ehr_client.dev.geth import DEFAULT_CHAIN_ID, CliqueNetwork
from ehr_client.dev.signers import sync_signers
from ehr_client.errors import ConfigError

app = typer.Typer(help="Run a local consortium chain: geth Clique validators on loopback.", no_args_is_help=True)

FUNDING_WEI = 10**24  # a million ether: gas money for governors on a private chain


def _root(app_: AppContext) -> Path:
    return app_.settings.home_dir / "network"


def _open(app_: AppContext) -> CliqueNetwork:
    return CliqueNetwork(_root(app_), detach=True)


@app.command("up")
def up(
    ctx: typer.Context,
    validators: Annotated[int | None, typer.Option("--validators", min=1, max=16,
                                                   help="Sealing validators of a new network (4).")] = None,
    rpc_nodes: Annotated[int | None, typer.Option("--rpc-nodes", min=0, max=8,
                                                  help="Non-sealing RPC nodes of a new network (0).")] = None,
    period: Annotated[int | None, typer.Option("--period", min=1, max=60,
                                               help="Seconds between blocks of a new network (1).")] = None,
    chain_id: Annotated[int, typer.Option("--chain-id", min=1, help="Chain id of a new network.")] = DEFAULT_CHAIN_ID,
    fund: Annotated[list[str] | None, typer.Option("--fund", help="Also fund this address or wallet (repeat).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Discard a stopped network's chain and start anew.")] = False,
) -> None:
    """Create (first time) and start the network in the background; idempotent."""
    app_ = app_context(ctx)
    root = _root(app_)
    if root.exists() and fresh:
        if any(node.running for node in _open(app_).nodes.values()):
            raise ConfigError("the network is running; `ehr network down` first to start it --fresh")
        shutil.rmtree(root)
    if root.exists():
        network = _open(app_)
        have = {"--validators": len(network.validators), "--rpc-nodes": len(network.rpc_nodes),
                "--period": network.period}
        asked = {"--validators": validators, "--rpc-nodes": rpc_nodes, "--period": period}
        changed = [f"{flag} {value}" for flag, value in asked.items() if value is not None and value != have[flag]]
        if changed:
            raise ConfigError(f"the network under {root} has {have['--validators']} validators, "
                              f"{have['--rpc-nodes']} RPC nodes and a period of {have['--period']} s, not "
                              f"{', '.join(changed)}: validators join by governance (`ehr network sync-validators`), "
                              "or start a new chain with --fresh")
        out().print(f"reusing the chain under {root} (chain id {network.chain_id})")
    else:
        alloc = {address: FUNDING_WEI for address in app_.known_wallets()}
        alloc.update({_parse.address(app_, text): FUNDING_WEI for text in fund or []})
        network = CliqueNetwork.create(root, validators=validators or 4, rpc_nodes=rpc_nodes or 0,
                                       period=period or 1, chain_id=chain_id, alloc=alloc, detach=True)
        out().print(f"created chain {chain_id} under {root}; funded {len(alloc)} account(s)")
    network.start()
    head = network.wait_for_block(network.head() + 1, timeout=60 + 10 * network.period)
    for node in network.nodes.values():
        role = f"validator {node.spec.address}" if node.spec.address else "rpc"
        out().print(f"{node.name} up (pid {node.pid}) at {node.rpc_url}; {role}")
    out().print(f"block {head}; use --rpc {network.rpc_url()} (or EHR_RPC_URL)")


@app.command("status")
def status(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Each node's state, head and peers; the signer set and who sealed the last blocks."""
    report = _open(app_context(ctx)).status()
    if json_:
        print_json(dataclasses.asdict(report))
        return
    table = Table("node", "kind", "state", "pid", "rpc", "head", "peers", "signer")
    for node in report.nodes:
        table.add_row(node.name, node.kind, "[green]running[/]" if node.running else "stopped", str(node.pid or "-"),
                      node.rpc_url, "-" if node.head is None else str(node.head),
                      "-" if node.peers is None else str(node.peers), node.address or "-")
    out().print(table)
    out().print(f"chain {report.chain_id}, period {report.period} s; signers: {', '.join(report.signers) or '?'}")
    for number, sealer in report.sealers.items():
        out().print(f"  block {number} sealed by {sealer}")


@app.command("down")
def down(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the chain, keys and data directories.")] = False,
) -> None:
    """Stop every node cleanly (the chain is kept unless --purge)."""
    app_ = app_context(ctx)
    root = _root(app_)
    if not root.exists():
        err().print("no network under this --home")
        return
    network = _open(app_)
    running = [node for node in network.nodes.values() if node.running]
    network.stop()
    out().print(f"stopped {len(running)} node(s); the chain is kept under {root}" if not purge else
                f"stopped {len(running)} node(s)")
    if purge:
        shutil.rmtree(root)
        out().print(f"deleted {root}")


def _read_clique_blocks(w3: Web3) -> None:
    """Clique blocks carry 97 bytes of extraData (vanity + seal): web3.py reads them only through its
    POA middleware. (Stopgap until the chain client adds it for every Clique chain.)"""
    if ExtraDataToPOAMiddleware not in w3.middleware_onion:
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)


@app.command("sync-validators")
def sync_validators(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for the votes to pass.")] = 60,
) -> None:
    """Vote the Consortium's active validators into the signer set, and everyone else out."""
    app_ = app_context(ctx)
    network = _open(app_)
    if app_.settings.rpc is None:
        app_.settings = dataclasses.replace(app_.settings, rpc=network.rpc_url())
    chain = app_.chain()
    _read_clique_blocks(chain.w3)
    wanted = [m.address for m in gov.members(chain) if m.role == "validator" and not m.suspended]
    mine = [node.rpc_url for node in network.validators if node.running]
    result = sync_signers(mine, wanted, timeout=timeout)
    for address in result.added:
        out().print(f"voted in {address}")
    for address in result.removed:
        out().print(f"voted out {address}")
    out().print(f"signers: {', '.join(result.signers)}")
