"""Deploy the suite with Ape and write deployments/<network>.json.

    ape run deploy --network ethereum:local:foundry --account ALIAS \
        --governor 0x... --governor 0x... --threshold 2 [--confirmations 3]

Refuses to overwrite the file of a deployment that is still live on that chain unless --force.
"""

from pathlib import Path

import click
from hexbytes import HexBytes
from ape import chain, project
from ape.cli import ConnectedProviderCommand, account_option
from web3.middleware import ExtraDataToPOAMiddleware

from ehr_client.chain.client import settled_block
from ehr_client.chain.deployment import Deployment, deployment_path
from ehr_client.chain.eip712 import check_domain_name, default_domain_name


def _read_proof_of_authority_blocks() -> None:
    """Clique blocks carry 97 bytes of extraData (vanity + seal); web3.py needs its POA middleware for
    them, and Ape's own detection misses it on a custom-URI network (the formatter error it gets is
    not the ExtraDataLengthError it looks for)."""
    genesis = chain.provider.make_request("eth_getBlockByNumber", ["0x0", False])
    web3 = chain.provider.web3
    if len(bytes.fromhex(genesis["extraData"][2:])) > 32 and ExtraDataToPOAMiddleware not in web3.middleware_onion:
        web3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)


def _is_live(path: Path, network_name: str) -> bool:
    if not path.exists():
        return False
    previous = Deployment.load(path)
    if previous.chain_id != chain.chain_id:
        return False
    return all(chain.provider.get_code(address) for address in previous.contracts.values())


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--governor", "governors", multiple=True, help="A governor address (repeat); default: the deployer")
@click.option("--threshold", type=int, default=None, help="Approvals a proposal needs (default: majority)")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Deployment file to write")
@click.option("--name", "consent_name", default=None,
              help="Consent domain name wallets show (consortium and deployment); default: after the network")
@click.option("--force", is_flag=True, help="Overwrite the file of a deployment that is still live")
@click.option("--confirmations", type=int, default=0,
              help="Blocks that must follow the registry's before its block is written down (a few on Clique)")
def cli(ecosystem, network, account, governors, threshold, consent_name, out, force, confirmations):
    _read_proof_of_authority_blocks()
    network_name = f"{ecosystem.name}:{network.name}"
    path = out or deployment_path(network_name)
    if not force and _is_live(path, network_name):
        raise click.ClickException(f"{path} describes a live deployment on chain {chain.chain_id}; pass --force")

    governor_list = list(governors) or [account.address]
    threshold = threshold or len(governor_list) // 2 + 1
    deploy_block = chain.blocks.head.number + 1
    consortium = account.deploy(project.Consortium, governor_list, threshold)
    keys = account.deploy(project.KeyRegistry)
    name = check_domain_name(consent_name or default_domain_name(network_name))
    records = account.deploy(project.RecordRegistry, consortium.address, name)
    receipt = chain.provider.get_receipt(records.txn_hash)
    registry_block = (receipt.block_number, chain.blocks[receipt.block_number].hash.to_0x_hex())
    if confirmations > 0:
        registry_block = settled_block(chain.provider.web3, HexBytes(records.txn_hash), confirmations, 120.0)
    deployment = Deployment(
        network=network_name,
        chain_id=chain.chain_id,
        deploy_block=deploy_block,
        deployer=account.address,
        contracts={
            "Consortium": consortium.address,
            "KeyRegistry": keys.address,
            "RecordRegistry": records.address,
            "ConsentManager": records.consentManager(),
        },
        governors=governor_list,
        threshold=threshold,
        registry_block_number=registry_block[0],
        registry_block_hash=registry_block[1],
    )
    deployment.save(path)
    click.echo(f"deployed to chain {chain.chain_id}; wrote {path}")
