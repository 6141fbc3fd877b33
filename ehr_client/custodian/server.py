"""Running a custodian: bind, serve with uvicorn, announce readiness, stop cleanly on SIGTERM;
or, for demos, serve from a thread of the calling process (`CustodianThread`)."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from ehr_client.custodian.core import Custodian
from ehr_client.custodian.service import create_app
from ehr_client.errors import ConfigError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _write_ready(path: Path, url: str, address: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "custodian": address, "pid": os.getpid()}, handle)
    os.replace(tmp, path)


def serve(
    custodian: Custodian,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    poll_interval: float = 2.0,
    ready_file: Path | None = None,
    announce: bool = True,
) -> None:
    """Serve until interrupted. Checks membership and the published key first (ConfigError if not).

    Once the poller runs and the socket listens, the URL is printed (and written as JSON to
    `ready_file`, atomically), so a supervisor knows when to send traffic.
    """
    custodian.check_ready()
    sock = bind(host, port)
    url = url_of(sock)

    def ready() -> None:
        if ready_file is not None:
            _write_ready(ready_file, url, custodian.address)
        if announce:
            print(f"custodian {custodian.address} listening on {url}", flush=True)

    app = create_app(custodian, poll_interval=poll_interval, on_ready=ready)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        custodian.store.close()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)


class CustodianThread:
    """A custodian served from a thread of this process (demos): same app, same HTTP, same checks."""

    def __init__(self, custodian: Custodian, *, host: str = "127.0.0.1", port: int = 0,
                 poll_interval: float = 1.0) -> None:
        self.custodian = custodian
        self._ready = threading.Event()
        self._sock = bind(host, port)
        self.url = url_of(self._sock)
        app = create_app(custodian, poll_interval=poll_interval, on_ready=self._ready.set)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"custodian-{custodian.address[:10]}", daemon=True)

    def start(self, *, timeout: float = 30.0) -> str:
        self.custodian.check_ready()
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ConfigError(f"the custodian at {self.url} did not start within {timeout:.0f} s")
        while not self._server.started:
            if not self._thread.is_alive():
                raise ConfigError(f"the custodian at {self.url} stopped while starting")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()
        self.custodian.store.close()
