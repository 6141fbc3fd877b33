"""`ehr keys`: the wallet and X25519 encryption keys of one identity (--wallet), and their publication."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount
from rich.table import Table

from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.cli._context import app_context
from ehr_client.cli._output import JsonFlag, err, out, print_json, tx_line
from ehr_client.chain.types import KeyType
from ehr_client.errors import ConfigError, KeyNotFound, KeystoreError, TransactionReverted
from ehr_client.keys import KeyInfo
from ehr_client.keys.derive import MAX_GENERATION, derive_from_account

app = typer.Typer(help="Create, import, list, rotate, revoke and publish keys.", no_args_is_help=True)


def _info_json(info: KeyInfo) -> dict[str, object]:
    return {
        "kind": info.kind,
        "name": info.name,
        "version": info.version,
        "address": info.address,
        "publicKey": "0x" + info.public_key.hex(),
        "created": info.created.isoformat(),
        "revoked": info.revoked.isoformat() if info.revoked else None,
    }


def _ensure_x25519(ctx: typer.Context) -> KeyInfo:
    app_ = app_context(ctx)
    keystore = app_.keystore(writing=True)
    try:
        return keystore.info("x25519")
    except KeyNotFound:
        return keystore.generate_encryption_key("x25519", password=app_.password())


@app.command("new")
def new(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Create a new wallet named --wallet and its first X25519 encryption key."""
    app_ = app_context(ctx)
    wallet = app_.settings.wallet
    info = app_.keystore(writing=True).generate_wallet(wallet, app_.password(new=True))
    key = _ensure_x25519(ctx)
    if json_:
        print_json({"wallet": wallet, "address": info.address, "keystore": str(app_.keystore().path),
                    "keys": [_info_json(info), _info_json(key)]})
        return
    out().print(f"wallet {wallet}: {info.address}")
    out().print(f"x25519 key v{key.version}: 0x{key.public_key.hex()}")
    err().print(f"keystore: {app_.keystore().path}\nnext: `ehr keys publish` once the chain is deployed")


@app.command("import")
def import_(
    ctx: typer.Context,
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", exists=True, dir_okay=False, readable=True,
                     help="File holding the private key (64 hex digits); prompted for if omitted."),
    ] = None,
) -> None:
    """Import an existing wallet private key as --wallet (never pass the key itself on the command line)."""
    app_ = app_context(ctx)
    if key_file is not None:
        secret = key_file.read_text().strip()
    elif app_.stdin_is_terminal():
        secret = str(typer.prompt("Private key (hex)", hide_input=True))
    else:
        raise ConfigError("no private key: pass --key-file FILE or run in a terminal to be prompted")
    info = app_.keystore(writing=True).import_wallet(app_.settings.wallet, secret, app_.password(new=True))
    key = _ensure_x25519(ctx)
    out().print(f"wallet {app_.settings.wallet}: {info.address}")
    out().print(f"x25519 key v{key.version}: 0x{key.public_key.hex()}")


@app.command("derive")
def derive(
    ctx: typer.Context,
    generation: Annotated[int, typer.Option("--generation", min=1, max=MAX_GENERATION,
                                            help="Key generation to derive; raise it to rotate derived keys.")] = 1,
    store: Annotated[bool, typer.Option("--store/--no-store",
                                        help="Keep the keys in the keystore as the current versions.")] = True,
    publish_: Annotated[bool, typer.Option("--publish", help="Also publish both public keys on chain.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Derive the X25519 and Umbral keys from --wallet's signature over the deployment's fixed
    key-derivation message: the same keys the patient portal derives from this wallet in a browser.
    Prints public keys only; the secrets go into the keystore (encrypted), never to the screen."""
    app_ = app_context(ctx)
    deployment = app_.deployment()
    account = app_.account()
    keys = derive_from_account(account, chain_id=deployment.chain_id,
                               verifying_contract=deployment.address("KeyRegistry"), generation=generation)
    result: dict[str, object] = {
        "address": account.address, "chainId": deployment.chain_id, "keyRegistry": deployment.address("KeyRegistry"),
        "generation": generation, "x25519PublicKey": "0x" + keys.x25519_public.hex(),
        "umbralPublicKey": "0x" + keys.umbral_public.hex(), "stored": None, "published": None,
    }
    if store:
        keystore = app_.keystore(writing=True)
        x25519, x_new = keystore.import_encryption_key("x25519", keys.x25519_secret, password=app_.password())
        umbral, u_new = keystore.import_encryption_key("umbral", keys.umbral_secret, password=app_.password())
        result["stored"] = {"x25519": {"version": x25519.version, "created": x_new},
                            "umbral": {"version": umbral.version, "created": u_new}}
    if publish_:
        if not store:
            raise ConfigError("--publish needs the keys in the keystore: drop --no-store")
        chain = app_.chain()
        x_version, _ = publish(chain, account, app_.keystore().info("x25519"))
        result["published"] = {"x25519": x_version, "umbral": app_.client().publish_umbral_key()}
    if json_:
        print_json(result)
        return
    out().print(f"x25519 public key: {result['x25519PublicKey']}")
    out().print(f"umbral public key: {result['umbralPublicKey']}")
    stored, published = result["stored"], result["published"]
    if isinstance(stored, dict):
        for kind, facts in stored.items():
            verb = "stored as" if facts["created"] else "already the current"
            err().print(f"{kind}: {verb} local version {facts['version']}")
    if isinstance(published, dict):
        err().print(f"published on chain: x25519 version {published['x25519']}, umbral version {published['umbral']}")
    elif store:
        err().print("next: `ehr keys derive --publish` (or `ehr keys publish`) so others encrypt to these keys")


@app.command("list")
def list_(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List the keys of --wallet (public facts only; no password needed)."""
    infos = app_context(ctx).keystore().list()
    if json_:
        print_json([_info_json(i) for i in infos])
        return
    if not infos:
        err().print("no keys: create them with `ehr keys new` or `ehr keys import`")
        return
    table = Table("kind", "name", "version", "address / public key", "created", "revoked")
    for i in infos:
        table.add_row(i.kind, i.name, str(i.version), i.address or "0x" + i.public_key.hex(),
                      i.created.strftime("%Y-%m-%d %H:%M"), i.revoked.strftime("%Y-%m-%d %H:%M") if i.revoked else "")
    out().print(table)


def chain_versions(chain: ChainClient, account: str) -> dict[bytes, tuple[int, bool]]:
    """Published X25519 keys of `account`: public key -> (on-chain version, revoked)."""
    latest = int(chain.call(chain.keys.functions.latestVersion(account, KeyType.X25519), action="read key versions"))
    calls = [chain.keys.functions.keyAt(account, KeyType.X25519, v) for v in range(1, latest + 1)]
    found: dict[bytes, tuple[int, bool]] = {}
    for version, key in enumerate(chain.batch_call(calls, action="read published keys"), start=1):
        public, _published_at, revoked_at = key
        found[bytes(public)] = (version, int(revoked_at) != 0)
    return found


def publish(chain: ChainClient, account: LocalAccount, key: KeyInfo) -> tuple[int, TxResult | None]:
    """Publish `key` unless it already is the account's current key; (on-chain version, tx or None)."""
    try:
        version, current = chain.call(chain.keys.functions.currentKey(account.address, KeyType.X25519),
                                      action="look up encryption key")
        if bytes(current) == key.public_key:
            return int(version), None
    except TransactionReverted:
        pass  # no active key yet
    tx = chain.transact(account, chain.keys.functions.publishKey(KeyType.X25519, key.public_key),
                        action="publish encryption key")
    return int(chain.events_in(tx, "KeyRegistry", "KeyPublished")[0]["version"]), tx


def report_publish(key: KeyInfo, version: int, tx: TxResult | None) -> None:
    if tx is None:
        out().print(f"x25519 key v{key.version} is already published (on-chain version {version})")
        return
    out().print(f"published x25519 key v{key.version} as on-chain version {version} ({tx_line(tx)})")
    if version != key.version:
        err().print(
            f"[yellow]warning:[/] the on-chain version ({version}) differs from the local one ({key.version}); "
            "records written to you from now on name the on-chain version"
        )


@app.command("publish")
def publish_cmd(ctx: typer.Context) -> None:
    """Publish the current X25519 public key to the KeyRegistry (no-op if already current)."""
    app_ = app_context(ctx)
    chain = app_.chain()
    key = app_.keystore().info("x25519")
    version, tx = publish(chain, app_.account(), key)
    report_publish(key, version, tx)


@app.command("rotate")
def rotate(ctx: typer.Context) -> None:
    """Create the next X25519 key version and publish it; old versions stay for old records."""
    app_ = app_context(ctx)
    chain = app_.chain()  # fail before rotating if the chain is unreachable
    account = app_.account()
    key = app_.keystore(writing=True).rotate_encryption_key("x25519", password=app_.password())
    out().print(f"created x25519 key v{key.version}: 0x{key.public_key.hex()}")
    version, tx = publish(chain, account, key)
    report_publish(key, version, tx)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    version: Annotated[int | None, typer.Option("--version", min=1, help="Local key version (default: latest).")] = None,
) -> None:
    """Revoke an X25519 key on chain (KeyRegistry.revokeKey) and mark it revoked locally."""
    app_ = app_context(ctx)
    keystore = app_.keystore()
    key = keystore.info("x25519", version=version)
    chain = app_.chain()
    account = app_.account()
    published = chain_versions(chain, account.address).get(key.public_key)
    if published is None:
        err().print(f"x25519 key v{key.version} was never published; marking it revoked locally only")
    elif published[1]:
        out().print(f"x25519 key v{key.version} (on-chain version {published[0]}) was already revoked on chain")
    else:
        tx = chain.transact(account, chain.keys.functions.revokeKey(KeyType.X25519, published[0]),
                            action="revoke encryption key")
        out().print(f"revoked x25519 key v{key.version} on chain (on-chain version {published[0]}; {tx_line(tx)})")
    keystore.mark_revoked("x25519", key.version)
    try:
        latest = keystore.info("x25519").version
    except KeystoreError:
        latest = key.version
    if latest == key.version:
        err().print("nobody can encrypt new records to you until you run `ehr keys rotate`")
