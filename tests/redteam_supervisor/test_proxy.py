"""Where the supervisor's JSON-RPC goes when the environment names an HTTP proxy.

`ehr_client.dev.rpc.rpc` posts with `requests`, which honours HTTP_PROXY / http_proxy for
http://127.0.0.1 URLs unless NO_PROXY lists them, so every call the supervisor makes (heads, pools,
`eth_sendRawTransaction` with a client's signed bytes, `debug_setHead`, `miner_stop`) is sent to the
proxy instead of the node. (`ehr_client.chain.rpc` and the Kubo stores already refuse proxies.)
The proxy here is a listener on loopback that records what reaches it: any other host would get
the same bytes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_client.dev.clique_watch import Supervisor
from ehr_client.dev.geth import CliqueNetwork


class RecordingProxy:
    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    self.requests.append(connection.recv(4096))
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def one_validator(tmp_path: Path) -> Iterator[CliqueNetwork]:
    with CliqueNetwork.create(tmp_path / "net", validators=1, period=1) as network:
        network.start()
        network.wait_for_block(1, timeout=60)
        yield network


def test_the_supervisor_talks_to_its_nodes_only(one_validator: CliqueNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = RecordingProxy()
    try:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        Supervisor(one_validator).check()  # one round: heads and pools of every node
        request_lines = [request.split(b"\r\n")[0] for request in proxy.requests]
        assert not request_lines, f"sent to the proxy: {request_lines}"
    finally:
        proxy.close()
