"""`ehr`: the command line for patients, providers, governors and operators.

Every user error ends in one `error: …` line on stderr and an exit code that says what kind of
failure it was (see :mod:`ehr_client.cli._errors`); secrets never travel on the command line.

Global options may come before or after the subcommand (`ehr --wallet patient record get ID` or
`ehr record get ID --wallet patient`). Subcommands are imported only when they run (see
:mod:`ehr_client.cli._lazy`), so `ehr --help` starts without loading web3.

Environment (besides each global option's own variable, shown in `ehr --help`):

    EHR_PASSWORD          keystore password (else --password-file, else a hidden prompt)
    EHR_DEPLOYMENTS_DIR   where deployments/<network>.json live (default: <home>/deployments, and
                          ./deployments is also searched when reading; see `--deployment`)
    EHR_ANVIL_BIN         Anvil binary for `ehr node up` / `ehr demo`
    EHR_KUBO_BIN          Kubo binary for `ehr node up --ipfs` / `ehr demo --ipfs`
    EHR_DEMO_STORE=ipfs   same as `ehr demo --ipfs`
    EHR_SCRYPT_N          TEST ONLY: scrypt cost of keys the CLI writes (default 2**18); a lower
                          value makes keys fast to crack, so it is announced on stderr
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from ehr_client.cli._errors import report
from ehr_client.cli._lazy import RootGroup
from ehr_client.cli._settings import WALLET_NAME, Settings, StoreKind, remembered_store
from ehr_client.errors import EHRError

__all__ = ["app", "main"]

EPILOG = (
    "Secrets: EHR_PASSWORD or --password-file (else a hidden prompt); private keys by file or prompt. "
    "Other variables: EHR_DEPLOYMENTS_DIR, EHR_ANVIL_BIN, EHR_KUBO_BIN, EHR_DEMO_STORE=ipfs, "
    "EHR_SCRYPT_N (test-only: weakens new keys). "
    "Exit codes: 0 ok, 1 error, 2 usage, 3 access denied, 4 integrity failure, 5 chain/storage down, 6 not found."
)

app = typer.Typer(
    name="ehr",
    cls=RootGroup,
    help="Patient-controlled, encrypted health records on an EVM chain.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    network: Annotated[str, typer.Option("--network", envvar="EHR_NETWORK",
                                         help="Deployment to use: <home>/deployments/<NAME>.json "
                                              "(else ./deployments/<NAME>.json).")] = "local",
    deployment: Annotated[Path | None, typer.Option("--deployment", envvar="EHR_DEPLOYMENT", dir_okay=False,
                                                    help="Deployment file to use instead of the --network "
                                                         "lookup (and where `deploy` writes).")] = None,
    rpc: Annotated[str | None, typer.Option(
        "--rpc", envvar="EHR_RPC_URL", help="JSON-RPC URL. Default: `ehr node up`'s, else http://127.0.0.1:8545.")] = None,
    store: Annotated[StoreKind | None, typer.Option(
        "--store", envvar="EHR_STORE",
        help="Blob store. Default: what `ehr node up --ipfs` recorded in the home (ipfs), else local.")] = None,
    store_dir: Annotated[Path | None, typer.Option("--store-dir", envvar="EHR_STORE_DIR", file_okay=False,
                                                   help="LocalStore directory. Default: <home>/store.")] = None,
    ipfs_api: Annotated[str | None, typer.Option(
        "--ipfs-api", envvar="EHR_IPFS_API", help="Kubo RPC API URL. Default: `ehr node up --ipfs`'s, else :5001.")] = None,
    home: Annotated[Path, typer.Option("--home", envvar="EHR_HOME", file_okay=False,
                                       help="Keystores, journal, node state.")] = Path("~/.ehr"),
    wallet: Annotated[str, typer.Option("--wallet", envvar="EHR_WALLET", help="Identity to act as.")] = "default",
    password_file: Annotated[Path | None, typer.Option("--password-file", envvar="EHR_PASSWORD_FILE", dir_okay=False,
                                                       help="File whose first line is the keystore password "
                                                            "(else $EHR_PASSWORD, else a hidden prompt).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log client steps (ids only) to stderr.")] = False,
) -> None:
    """Patient-controlled, encrypted health records on an EVM chain."""
    if not WALLET_NAME.fullmatch(wallet):
        raise typer.BadParameter("use 1-64 lowercase letters, digits, '-' or '_'", param_hint="--wallet")
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    resolved = store or remembered_store(home.expanduser() / "node") or StoreKind.local
    # an AppContext is built from these on first use (ehr_client.cli._context.app_context)
    ctx.obj = Settings(network=network, rpc=rpc, store=resolved, store_dir=store_dir, ipfs_api=ipfs_api,
                       home=home, wallet=wallet, password_file=password_file, deployment=deployment)


# Subcommands are listed in ehr_client.cli._lazy.COMMANDS and imported when they run.


@app.command("demo")
def _demo(
    ipfs: Annotated[bool, typer.Option("--ipfs", help="Use a Kubo daemon (IpfsStore) instead of the embedded "
                                                      "LocalStore; also EHR_DEMO_STORE=ipfs.")] = False,
    audited: Annotated[bool, typer.Option("--audited/--no-audited", help="Also tell the second story: audited "
                                          "key release through three custodians, revocation, erasure.")] = True,
    chain: Annotated[str | None, typer.Option("--chain", help="anvil (one instant-mining process) or consortium "
                                              "(four geth Clique validators and an RPC node); also "
                                              "EHR_DEMO_CHAIN.")] = None,
    claims: Annotated[bool, typer.Option("--claims/--no-claims", help="Also tell the third story: a zero-knowledge "
                                         "proof that a lab result is in range (runs a local ceremony once).")] = True,
) -> None:
    """Run the whole story on a throwaway local chain: consortium, records, signed consent, audit."""
    from ehr_client.demo import chain_from_env, run_demo, store_from_env

    run_demo(ipfs=ipfs or store_from_env(), audited=audited, claims=claims,
             chain=(chain or chain_from_env()).lower())


def main() -> None:
    """Console-script entry point (`ehr`)."""
    try:
        app(prog_name="ehr")
    except EHRError as exc:  # raised outside a command (e.g. while closing); commands report their own
        sys.exit(report(exc))
