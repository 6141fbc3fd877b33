"""What held: a page of another origin in the patient's browser cannot make the portal store
anything through the endpoints that take a body (the Content-Type they demand needs a CORS
preflight the portal never grants), nor reach the API under a rebound host name."""

from __future__ import annotations

import http.server
import struct
import threading
from pathlib import Path
from typing import Any

from ehr_client.storage import LocalStore
from ehr_client.storage.cid import cid_for_bytes
from tests.portal.conftest import Portal


def test_held_other_origins_cannot_upload_or_relay(portal: Portal, home: Path, browser: Any) -> None:
    body = struct.pack(">4sBQB", b"EHRP", 3, 1, 0) + b"\x44" * 80 + b"\x00" + b"cross-site upload"
    hex_body = body.hex()
    evil = f"""<html><body><script>
      const bytes = new Uint8Array('{hex_body}'.match(/../g).map((b) => parseInt(b, 16)));
      const results = [];
      const tries = [
        fetch('{portal.url}/api/packages', {{method: 'POST', body: bytes, headers: {{'Content-Type': 'application/octet-stream'}}}}),
        fetch('{portal.url}/api/packages', {{method: 'POST', body: bytes, mode: 'no-cors'}}),
        fetch('{portal.url}/api/rpc', {{method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}},
          body: JSON.stringify({{jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: []}})}}),
      ];
      Promise.allSettled(tries).then((r) => {{ document.title = r.map((x) => x.status).join(','); }});
    </script></body></html>""".encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"http://localhost:{server.server_address[1]}/")
        page.wait_for_function("() => document.title !== ''")
    finally:
        context.close()
        server.shutdown()
        server.server_close()
    assert not LocalStore(home / "store").has(cid_for_bytes(body))
