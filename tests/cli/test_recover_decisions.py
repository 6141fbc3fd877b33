"""`ehr record recover` as the patient: a revocation the node lost (rolled back to a dump taken before
it) is applied again and reported, once."""

from __future__ import annotations

from web3 import HTTPProvider, Web3

from ehr_client.dev.node import AnvilNode
from tests.cli.conftest import Cli


def test_recover_revokes_again_what_the_chain_lost_and_says_so(cli: Cli, anvil: AnvilNode,
                                                               world: dict[str, str]) -> None:
    doctor = world["doctor"]
    cli("grant", "doctor", "--scopes", "lab", "--for", "24h", "--no-share-keys", wallet="patient")
    w3 = Web3(HTTPProvider(anvil.rpc_url))
    saved = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    cli("revoke", "doctor", wallet="patient")
    w3.provider.make_request("evm_revert", [saved])  # type: ignore[arg-type]

    recovered = cli.json("record", "recover", wallet="patient")
    by_id = {(r["kind"], r["id"]): r for r in recovered}
    lost = by_id[("revoke", doctor.lower())]
    assert lost["outcome"] == "re-applied" and lost["txHash"].startswith("0x")
    assert by_id[("grant", world["lab"].lower())]["outcome"] == "on chain"  # the world's grants are untouched
    assert ("grant", doctor.lower()) not in by_id  # only the last decision per grantee counts

    again = cli("record", "recover", wallet="patient")  # text; nothing left to apply
    assert f"revoke {doctor.lower()}: on chain" in again.stdout and "re-applied" not in again.stdout
