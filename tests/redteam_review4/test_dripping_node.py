"""A chain node (or whatever answers at its address) that sends its answer one byte at a time, each
byte sooner than the request timeout: the kept-alive batch path sets that timeout on the socket, so
it bounds each wait for a byte, not the request, and the call runs on past its one deadline with no
error for the failover loop to act on (a large declared body is read into memory likewise)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from ehr_client.chain.rpc import FailoverProvider

DEADLINE = 1.0
SLACK = 1.5
DRIP = 0.25  # seconds between bytes, well inside the socket timeout
DRIPPED_FOR = 8.0  # the node gives up after this; the call must have ended long before


@pytest.fixture
def dripping_node() -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n")
            ends = time.monotonic() + DRIPPED_FOR
            while not stop.is_set() and time.monotonic() < ends:
                try:
                    connection.sendall(b" ")
                except OSError:
                    return  # the client gave up and closed: what should happen
                time.sleep(DRIP)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        server.join()
        listener.close()


def test_a_dripping_node_does_not_hold_a_batch_past_its_deadline(dripping_node: str) -> None:
    provider = FailoverProvider([dripping_node], request_timeout=DEADLINE)
    started = time.monotonic()
    with pytest.raises((requests.Timeout, requests.ConnectionError)):  # what the failover loop handles
        provider.make_batch_request([("eth_blockNumber", [])])  # type: ignore[list-item]
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + SLACK, f"a dripping node held one batch for {elapsed:.1f}s (deadline {DEADLINE}s)"
