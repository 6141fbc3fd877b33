"""What an unauthenticated caller can make a custodian read, compute or remember, bounded.

`BodyLimit` refuses a request body over `MAX_BODY` bytes with 413 before anything parses it:
at once when Content-Length says so, and, for a chunked body, as soon as the bytes received pass
the limit (the rest is never read). `WindowCounter` counts events per key in a sliding window,
in memory and with a bounded number of keys, for rate limits and for refusals that must not turn
into database rows (an unsigned request names nobody the custodian can hold to account).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

MAX_BODY = 64 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"reason": "too-large", "message": f"request bodies are limited to {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: 413 for any HTTP request body over `limit` bytes, before it is parsed."""

    def __init__(self, app: ASGIApp, *, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        received = 0
        refused = False

        async def limited_receive() -> Message:
            # A chunked body past the limit: answer 413 ourselves and tell the app the client
            # left, so it stops reading; whatever it answers then is dropped.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    await _too_large(send, self.limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


class WindowCounter:
    """Events per key within the last `window` seconds (thread-safe, at most `max_keys` keys:
    the least recently seen are forgotten first, so a flood of new keys cannot grow it)."""

    def __init__(self, *, window: float, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        self._events.move_to_end(key)
        while events and events[0] <= now - self.window:
            events.popleft()
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        return events

    def hit(self, key: str, *, limit: int) -> bool:
        """Count one event for `key`; False (and nothing counted) when `limit` are already in the window."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            if len(events) >= limit:
                return False
            events.append(now)
            return True

    def count(self, key: str) -> int:
        with self._lock:
            return len(self._recent(key, self.clock()))
