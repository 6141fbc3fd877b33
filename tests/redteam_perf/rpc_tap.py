"""A JSON-RPC relay on loopback between a client and the real node: it forwards every request,
remembers what was asked, and can withhold the logs a filter matches (a node that dropped them)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


class RpcTap:
    def __init__(self, upstream: str, *, withhold_logs: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.upstream = upstream
        self.withhold_logs = withhold_logs
        self.hang_logs = threading.Event()  # set: log queries get no answer until it is cleared (a hung node)
        self.asked: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        tap = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = tap.forward(json.loads(body))
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def forward(self, payload: Any) -> Any:
        batch = payload if isinstance(payload, list) else [payload]
        with self._lock:
            self.asked.extend(batch)
        if any(r.get("method") == "eth_getLogs" for r in batch):
            for _ in range(600):  # bounded: at most 30 s
                if not self.hang_logs.is_set():
                    break
                threading.Event().wait(0.05)
        answer = requests.post(self.upstream, json=payload, timeout=30).json()
        answers = answer if isinstance(answer, list) else [answer]
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        for request in batch:
            if request.get("method") == "eth_getLogs" and self.withhold_logs and self.withhold_logs(request["params"][0]):
                if request.get("id") in by_id and "result" in by_id[request["id"]]:
                    by_id[request["id"]]["result"] = []
        return answer

    def log_queries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r["params"][0] for r in self.asked if r.get("method") == "eth_getLogs"]

    def blocks_asked(self, head: int) -> int:
        """How many blocks the log queries covered in all ("latest" counted as `head`)."""
        total = 0
        for query in self.log_queries():
            start = _block(query.get("fromBlock", "0x0"), head)
            end = _block(query.get("toBlock", "latest"), head)
            total += max(0, min(end, head) - start + 1)
        return total

    def reset(self) -> None:
        with self._lock:
            self.asked.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _block(value: Any, head: int) -> int:
    if value in ("latest", "pending", "safe", "finalized"):
        return head
    if value == "earliest":
        return 0
    return int(value, 16) if isinstance(value, str) else int(value)
