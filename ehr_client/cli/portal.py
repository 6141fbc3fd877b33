"""`ehr portal`: serve the patient's web app for this deployment on loopback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ehr_client.chain.client import ChainClient
from ehr_client.cli._context import app_context
from ehr_client.cli._output import err
from ehr_client.cli.custodian import CUSTODIANS_ENV
from ehr_client.client import EHRClient, Identity
from ehr_client.portal import Clients, PortalServer, PortalServices, default_static_dir
from ehr_client.errors import ConfigError
from ehr_client.portal.app import LOOPBACK_NAMES, host_name
from ehr_client.portal.custodians import CustodianDirectory

CONNECT_TIMEOUT = 8.0


def portal(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (loopback unless you put TLS in front).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port; 0 picks a free one.")] = 8780,
    relayer: Annotated[bool, typer.Option(
        "--relayer/--no-relayer", help="Relay patients' signed consent, paying the gas from --wallet.")] = False,
    static_dir: Annotated[Path | None, typer.Option(
        "--static-dir", file_okay=False, help="The built page (default: $EHR_PORTAL_DIR, else .build/portal).")] = None,
    ready_file: Annotated[Path | None, typer.Option("--ready-file", dir_okay=False,
                                                    help="Write {url, pid} here once serving.")] = None,
    custodian: Annotated[list[str] | None, typer.Option(
        "--custodian", help=f"Key custodian URL the page reaches through the portal; repeat for each "
        f"(default: ${CUSTODIANS_ENV}, comma-separated; none: no audited release).")] = None,
    threshold: Annotated[int, typer.Option("--threshold", "-m", min=1,
                                           help="Custodian fragments needed to open a key (m of n).")] = 2,
) -> None:
    """Serve the patient portal: the web app and an API for ciphertext, chain reads and relaying.

    The portal starts even when the chain node is down (the page says so and recovers when it is
    back); the deployment file and, with --relayer, the wallet's password are needed at start."""
    urls = tuple(dict.fromkeys(u.strip() for value in (custodian or [os.environ.get(CUSTODIANS_ENV, "")])
                               for u in value.split(",") if u.strip()))
    if urls and threshold > len(urls):
        raise ConfigError(f"a threshold of {threshold} needs at least {threshold} custodians (got {len(urls)}); "
                          "name more with --custodian or lower --threshold")
    app_ = app_context(ctx)
    deployment = app_.deployment()
    deployment.check_client_compatible()
    identity = app_.identity() if relayer else None
    store = app_.store()
    state_dir = app_.settings.home_dir / "portal" / app_.settings.network.replace(":", "-")

    def connect() -> Clients:
        # a page waits on this: a node that is down is reported within CONNECT_TIMEOUT, then retried next request
        chain = ChainClient(app_.rpc_url, deployment, timeout=CONNECT_TIMEOUT)
        reader = EHRClient(chain, store, Identity.generate(), state_dir=state_dir / "reader")
        paying = None if identity is None else EHRClient(chain, store, identity, state_dir=app_.journal_dir)
        return Clients(reader, paying)

    named = host_name(f"[{host}]:0" if ":" in host else f"{host}:0")
    services = PortalServices(connect=connect, rpc_url=app_.rpc_url, relays=relayer, network=app_.settings.network,
                              hosts=tuple(dict.fromkeys((*LOOPBACK_NAMES, named))),
                              static_dir=(static_dir or default_static_dir()).expanduser(), state_dir=state_dir,
                              custodians=CustodianDirectory(urls, threshold))
    server = PortalServer(services, host=host, port=port)
    if identity is not None:
        err().print(f"relaying signed consent from {identity.address} (it pays the gas)")
    server.serve(ready_file=ready_file)
