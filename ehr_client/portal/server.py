"""Running the portal: bind loopback, serve with uvicorn, announce the URL (and write it to a ready
file, as custodians do, so a supervisor or a test knows when to connect)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import uvicorn

from ehr_client.custodian.server import bind, url_of
from ehr_client.errors import ConfigError
from ehr_client.portal.app import PortalServices, create_app

STATIC_DIR_ENV = "EHR_PORTAL_DIR"


def default_static_dir() -> Path:
    """$EHR_PORTAL_DIR, else the checkout's .build/portal (what `make portal` writes)."""
    if os.environ.get(STATIC_DIR_ENV):
        return Path(os.environ[STATIC_DIR_ENV]).expanduser()
    return Path(__file__).resolve().parents[2] / ".build" / "portal"


def _write_ready(path: Path, url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "pid": os.getpid()}, handle)
    os.replace(tmp, path)


class PortalServer:
    """One portal on one socket; `serve` blocks until SIGINT/SIGTERM."""

    def __init__(self, services: PortalServices, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not (services.static_dir / "index.html").is_file():
            raise ConfigError(f"the portal's page is not built in {services.static_dir}: run `make portal` "
                              f"(or point ${STATIC_DIR_ENV} at a built copy)")
        self.services = services
        self._sock = bind(host, port)
        self.url = url_of(self._sock)

    def serve(self, *, ready_file: Path | None = None, announce: bool = True) -> None:
        def ready() -> None:
            if ready_file is not None:
                _write_ready(ready_file, self.url)
            if announce:
                print(f"portal for {self.services.network} listening on {self.url}", flush=True)

        app = create_app(self.services, on_ready=ready)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        try:
            uvicorn.Server(config).run(sockets=[self._sock])
        finally:
            self._sock.close()
            if ready_file is not None:
                ready_file.unlink(missing_ok=True)
