"""`ehr deploy`: deploy the contract suite and write <home>/deployments/<network>.json.

The file goes under the home (or to --deployment / $EHR_DEPLOYMENTS_DIR), not the current
directory, so later commands find it from anywhere; see `Settings.deployment_candidates`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import requests
import typer
from rich.table import Table
from web3 import HTTPProvider, Web3

from ehr_client.chain.client import deploy_suite
from ehr_client.chain.deployment import Deployment
from ehr_client.cli import _parse
from ehr_client.cli._context import app_context
from ehr_client.cli._output import JsonFlag, err, out, print_json
from ehr_client.errors import ChainUnavailable, ConfigError


def is_live(deployment: Deployment, rpc_url: str) -> bool:
    """Whether the node at `rpc_url` serves the deployment's chain and has code at every address."""
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    try:
        if w3.eth.chain_id != deployment.chain_id:
            return False
        return all(w3.eth.get_code(Web3.to_checksum_address(a)) for a in deployment.contracts.values())
    except (requests.ConnectionError, requests.Timeout):
        raise ChainUnavailable(f"cannot reach the chain node at {rpc_url}; start it (`ehr node up`) or fix --rpc") from None


def _existing(path: Path) -> Deployment | None:
    if not path.exists():
        return None
    try:
        return Deployment.load(path)
    except ConfigError:
        err().print(f"[yellow]warning:[/] {path} is unreadable; it will be replaced")
        return None


def deploy(
    ctx: typer.Context,
    governor: Annotated[
        list[str] | None,
        typer.Option("--governor", help="Governor address or local wallet name; repeat. Default: the deployer."),
    ] = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", min=1, help="Approvals a proposal needs. Default: a majority.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a deployment file that is still live.")] = False,
    name: Annotated[str | None, typer.Option(
        "--name", help="What wallets show as the consent domain: the consortium and deployment. "
                       "Default: after the network.")] = None,
    confirmations: Annotated[int, typer.Option(
        "--confirmations", min=0, help="Blocks that must follow the registry's before its block is written down "
                                       "(a few on a Clique chain, whose newest blocks a fork can replace).")] = 0,
    json_: JsonFlag = False,
) -> None:
    """Deploy Consortium, KeyRegistry, RecordRegistry and ConsentManager from --wallet."""
    app_ = app_context(ctx)
    path = app_.settings.deployment_target
    named = [_parse.address(app_, g) for g in governor or []]  # arguments first: unlocking costs a second
    if threshold is not None and threshold > max(len(named), 1):
        raise typer.BadParameter(f"{threshold} approvals but only {max(len(named), 1)} governor(s)",
                                 param_hint="--threshold")
    existing = _existing(path)
    if existing is not None and not force and is_live(existing, app_.rpc_url):
        raise ConfigError(
            f"{path} describes a live deployment on chain {existing.chain_id} "
            f"(RecordRegistry {existing.address('RecordRegistry')}); pass --force to replace it"
        )
    account = app_.account()
    governors = named or [account.address]
    needed = threshold if threshold is not None else len(governors) // 2 + 1
    deployment = deploy_suite(app_.rpc_url, account, network=app_.settings.network, governors=governors,
                              threshold=needed, consent_name=name, confirmations=confirmations)
    deployment.save(path)
    if json_:
        print_json({**json.loads(deployment.to_json()), "file": str(path)})
        return
    table = Table("contract", "address", title=f"{app_.settings.network} (chain {deployment.chain_id})")
    for name, address in deployment.contracts.items():
        table.add_row(name, address)
    out().print(table)
    out().print(f"governors: {', '.join(deployment.governors)} ({deployment.threshold} must approve)")
    out().print(f"wrote {path}")
