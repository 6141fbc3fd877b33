"""A read fetches and checks the ciphertext while its access request is being mined, and decrypts
nothing until the request is on chain (Anvil with automine off: blocks come only when the test mines)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import ChainUnavailable
from ehr_client.storage import Cid, LocalStore


class WatchedStore(LocalStore):
    """A real LocalStore that calls `on_get` before every read of a blob."""

    def __init__(self, root: Path, on_get: Callable[[], None]) -> None:
        super().__init__(root)
        self.on_get = on_get

    def get(self, cid: Cid) -> bytes:
        self.on_get()
        return super().get(cid)


def _rpc(suite: ChainClient, method: str, *params: Any) -> Any:
    return suite.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


@pytest.fixture
def manual_mining(suite: ChainClient) -> Iterator[None]:
    _rpc(suite, "evm_setAutomine", False)
    try:
        yield
    finally:
        _rpc(suite, "evm_setAutomine", True)
        _rpc(suite, "evm_mine")


def _pending_requests(suite: ChainClient, address: str) -> int:
    return int(_rpc(suite, "eth_getTransactionCount", address, "pending"), 16) - \
        int(_rpc(suite, "eth_getTransactionCount", address, "latest"), 16)


def _patient(suite: ChainClient, ids: dict[str, Identity], store: LocalStore, tmp_path: Path) -> EHRClient:
    patient = EHRClient(suite, store, ids["patient"], state_dir=tmp_path / "state")
    patient.register_patient()
    patient.publish_key()
    return patient


def test_ciphertext_is_fetched_while_the_access_request_waits_for_its_block(
    suite: ChainClient, ids: dict[str, Identity], tmp_path: Path, observation: dict[str, Any], request: Any,
) -> None:
    seen: list[int] = []

    def on_get() -> None:
        seen.append(_pending_requests(suite, ids["patient"].address))
        _rpc(suite, "evm_mine")  # only now does the access request get its block

    store = WatchedStore(tmp_path / "store", on_get)
    patient = _patient(suite, ids, store, tmp_path)
    written = patient.add_record(patient.address, observation)
    seen.clear()
    request.getfixturevalue("manual_mining")
    result = patient.read_record(written.record_id)
    assert result.resource()["valueQuantity"]["value"] == observation["valueQuantity"]["value"]
    assert seen[0] == 1  # the blob was read while the access request was sent but not mined


def test_no_plaintext_while_the_access_request_is_not_mined(
    suite: ChainClient, ids: dict[str, Identity], tmp_path: Path, observation: dict[str, Any], request: Any,
) -> None:
    fetched: list[int] = []
    store = WatchedStore(tmp_path / "store", lambda: fetched.append(1))
    patient = _patient(suite, ids, store, tmp_path)
    written = patient.add_record(patient.address, observation)
    fetched.clear()
    request.getfixturevalue("manual_mining")
    impatient = EHRClient(ChainClient(suite.rpc_urls, suite.deployment, timeout=3.0), store, ids["patient"],
                          state_dir=tmp_path / "state")
    with pytest.raises(ChainUnavailable, match="not mined"):
        impatient.read_record(written.record_id)
    assert fetched  # the ciphertext was fetched, yet nothing was decrypted or returned
    assert _pending_requests(suite, ids["patient"].address) == 1  # the request waits; nothing else was sent
