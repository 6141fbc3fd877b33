"""One account writing from two processes through two different nodes of a Clique network.

Each node answers "the next nonce" from its own transaction pool, which learns the other node's
transactions only by gossip: both writers can pick the same nonce, and only one of the two
transactions can ever be mined. Every write must still land exactly once or fail with a typed error.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.dev.geth import CliqueNetwork
from ehr_client.errors import EHRError
from ehr_client.storage import LocalStore
from tests.network._chain import dev_account

WRITES = 6


def _observation(writer: int, i: int) -> dict[str, object]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
            "valueQuantity": {"value": writer * 100 + i, "unit": "mmol/L"}}


def test_two_writers_one_account_two_nodes_land_every_record_once(supervised_network: CliqueNetwork,
                                                                 tmp_path: Path) -> None:
    network = supervised_network
    governor, patient = dev_account(0), dev_account(5)
    deployment = deploy_suite(network.rpc_url(), governor, network="nonces", governors=[governor.address],
                              threshold=1, confirmations=2)
    identity = Identity.from_private_keys(patient.key, {1: generate_x25519_keypair().private_key})
    store = LocalStore(tmp_path / "store")
    urls = [network.rpc_url(), network.validators[0].rpc_url]
    clients = [EHRClient(ChainClient(url, deployment, confirmations=1), store, identity,
                         state_dir=tmp_path / f"state-{i}") for i, url in enumerate(urls)]
    clients[0].register_patient()
    clients[0].publish_key()
    network.wait_for_sync(timeout=60)

    landed: list[list[bytes]] = [[], []]
    failed: list[BaseException] = []

    def write(writer: int) -> None:
        for i in range(WRITES):
            try:
                landed[writer].append(clients[writer].add_record(patient.address, _observation(writer, i)).record_id)
            except EHRError as exc:  # typed: allowed, but then the record must not be on chain twice
                failed.append(exc)
            except BaseException as exc:  # untyped: a defect
                failed.append(exc)
                raise

    threads = [threading.Thread(target=write, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not [exc for exc in failed if not isinstance(exc, EHRError)], failed
    assert not failed, [f"{type(exc).__name__}: {exc}" for exc in failed]
    on_chain = [info.record_id for info in clients[0].list_records(patient.address)]
    assert len(on_chain) == len(set(on_chain)) == 2 * WRITES
    assert set(on_chain) == set(landed[0]) | set(landed[1])
