"""`IpfsStore`: a `BlobStore` on a Kubo node, through its HTTP RPC API (`/api/v0`).

Blobs are added as CIDv1 with raw leaves and 256 KiB chunks, and pinned. A blob of at most one
chunk gets the raw CID that `cid_for_bytes` computes, and reads of raw CIDs are checked against
the hash. A larger blob gets a dag-pb root CID; its reads are checked only for length, so for
those the caller's own check (the sha-256 anchored on chain, the AES-GCM tag) is what guards
integrity.

With `offline=True` (the default) no call makes the node fetch from the network: an absent blob
is `BlobNotFound` at once instead of a long search. `has` is always offline (it asks the pin set).
`remove` unpins and then deletes the blob's blocks that nothing else pins.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from ehr_client.errors import BlobNotFound, ConfigError, IntegrityError, StorageError, StorageUnavailable
from ehr_client.storage.base import DurablePuts
from ehr_client.storage._verify import check_bytes, verified_chunks
from ehr_client.storage.cid import RAW, Cid, CidHasher, decode_cid, parse_cid

CHUNK_SIZE = 262_144
DEFAULT_API_URL = "http://127.0.0.1:5001"

_ADD_PARAMS = {
    "cid-version": "1",
    "raw-leaves": "true",
    "hash": "sha2-256",
    "chunker": f"size-{CHUNK_SIZE}",
    "pin": "true",
    "quieter": "true",
    "progress": "false",
}
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_NOT_FOUND_MARKERS = ("not found", "could not find", "not pinned", "no link named")
_MAX_BACKOFF = 2.0
_MIN_ATTEMPT = 0.05  # seconds: an attempt with less time than this left is not made
_DOWNLOAD_CHUNK = 1 << 16

Params = Mapping[str, str | list[str]]


def api_base_url(api_url: str) -> str:
    """`http://host:port` from an http(s) URL or a `/ip4/<host>/tcp/<port>` multiaddr."""
    url = api_url.strip().rstrip("/")
    parts = url.split("/")
    if url.startswith(("/ip4/", "/ip6/", "/dns/", "/dns4/", "/dns6/")) and len(parts) == 5 and parts[3] == "tcp":
        host = f"[{parts[2]}]" if parts[1] == "ip6" else parts[2]
        return f"http://{host}:{parts[4]}"
    if url.endswith("/api/v0"):
        url = url[: -len("/api/v0")]
    parsed = httpx.URL(url) if "://" in url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"invalid IPFS API URL {api_url!r}: use http://host:port or /ip4/host/tcp/port")
    return url


class IpfsStore(DurablePuts):
    """A `BlobStore` backed by a Kubo node's RPC API at `api_url`.

    `timeout` is one deadline for a whole call, retries included (a hung node yields
    `StorageUnavailable` once it passes, never a multiple of it); within it, idempotent calls are
    retried up to `retries` times with exponential backoff (from `backoff` seconds) on connection
    errors, timeouts and 5xx answers that are not a Kubo error message. `put` is retried too: adding the same bytes
    twice gives the same CID. `put_stream` is retried only while none of the stream was consumed
    (the iterable is read once); after that a failure is `StorageUnavailable` and the caller must
    retry with a fresh stream.
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.1,
        offline: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_base_url(api_url)
        self.retries = max(0, retries)
        self.backoff = backoff
        self.offline = offline
        self.timeout = timeout
        self._client = httpx.Client(
            base_url=f"{self.api_url}/api/v0/",
            timeout=httpx.Timeout(timeout),
            transport=transport,
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"IpfsStore({self.api_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> IpfsStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def put(self, data: bytes) -> Cid:
        expected = CidHasher()
        expected.update(data)
        boundary = _boundary()

        def body() -> Iterator[bytes]:
            return iter((_part_head(boundary), data, _part_tail(boundary)))

        response = self._request("add", _ADD_PARAMS, body=body, boundary=boundary)
        return self._checked_add_result(response, expected)

    def put_stream(self, chunks: Iterable[bytes]) -> Cid:
        source = iter(chunks)
        expected = CidHasher()
        boundary = _boundary()
        consumed = False

        def body() -> Iterator[bytes]:
            nonlocal consumed
            yield _part_head(boundary)
            for chunk in source:
                consumed = True
                if chunk:
                    expected.update(chunk)
                    yield bytes(chunk)
            yield _part_tail(boundary)

        response = self._request("add", _ADD_PARAMS, body=body, boundary=boundary, replayable=lambda: not consumed)
        return self._checked_add_result(response, expected)

    def get(self, cid: Cid) -> bytes:
        decode_cid(cid)
        response = self._request("cat", self._offline_params({"arg": cid}))
        data = response.content
        expected = _content_length(response)
        if expected is not None and len(data) != expected:
            raise IntegrityError(f"blob {cid} from {self!r} is truncated ({len(data)} of {expected} bytes); retry")
        return check_bytes(cid, data, repr(self))

    def iter_get(self, cid: Cid) -> Iterator[bytes]:
        decode_cid(cid)
        response = self._request("cat", self._offline_params({"arg": cid}), stream=True)
        return verified_chunks(cid, self._stream_body(response), repr(self), expected_size=_content_length(response))

    def has(self, cid: Cid) -> bool:
        decode_cid(cid)
        try:
            response = self._request("pin/ls", {"arg": cid, "type": "recursive", "offline": "true"})
        except BlobNotFound:
            return False
        return cid in (_json_lines(response)[-1].get("Keys") or {})

    def remove(self, cid: Cid) -> None:
        decode_cid(cid)
        with contextlib.suppress(BlobNotFound):
            self._request("pin/rm", {"arg": cid})
        blocks: list[str] = [cid]
        if decode_cid(cid).codec != RAW:
            try:
                refs = self._request("refs", {"arg": cid, "recursive": "true", "unique": "true", "offline": "true"})
                blocks += [r["Ref"] for r in _json_lines(refs) if r.get("Ref") and not r.get("Err")]
            except BlobNotFound:
                pass
        self._request("block/rm", {"arg": blocks, "force": "true", "quiet": "true"})

    def size(self, cid: Cid) -> int:
        decode_cid(cid)
        response = self._request("files/stat", self._offline_params({"arg": f"/ipfs/{cid}"}))
        info = _json_lines(response)[-1]
        size = info.get("Size")
        if not isinstance(size, int) or size < 0:
            raise StorageError(f"{self!r} returned no size for blob {cid}")
        return size

    def _offline_params(self, params: dict[str, str]) -> dict[str, str]:
        return {**params, "offline": "true"} if self.offline else params

    def _checked_add_result(self, response: httpx.Response, expected: CidHasher) -> Cid:
        hashes = [line["Hash"] for line in _json_lines(response) if "Hash" in line]
        if not hashes:
            raise StorageError(f"{self!r} accepted the upload but returned no CID")
        cid = parse_cid(hashes[-1])
        if expected.size <= CHUNK_SIZE and cid != expected.cid():
            raise IntegrityError(
                f"{self!r} stored a {expected.size}-byte blob under CID {cid}, but its CID is {expected.cid()}; "
                "the node is misconfigured or faulty"
            )
        return cid

    def _stream_body(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(_DOWNLOAD_CHUNK)
        except httpx.TransportError as exc:
            raise self._unavailable("cat", exc, attempts=1) from exc
        finally:
            response.close()

    def _request(
        self,
        command: str,
        params: Params,
        *,
        body: Callable[[], Iterator[bytes]] | None = None,
        boundary: str = "",
        stream: bool = False,
        replayable: Callable[[], bool] = lambda: True,
    ) -> httpx.Response:
        attempt = 0
        deadline = time.monotonic() + self.timeout
        while True:
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"} if body else None
            left = max(deadline - time.monotonic(), _MIN_ATTEMPT)
            request = self._client.build_request(
                "POST", command, params=params, content=body() if body else None, headers=headers,
                timeout=httpx.Timeout(left),
            )
            failure: Exception
            try:
                response = self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                failure = exc
            else:
                if response.status_code < 400:
                    if not stream:
                        self._read_all(command, response)
                    return response
                self._read_all(command, response)
                error = _kubo_error(response)
                if error is not None:
                    raise self._command_error(command, params, error)
                if response.status_code not in _RETRY_STATUS:
                    raise StorageError(
                        f"{self!r} answered {command} with HTTP {response.status_code}; "
                        f"is {self.api_url} a Kubo RPC API?"
                    )
                failure = httpx.HTTPStatusError(f"HTTP {response.status_code}", request=request, response=response)
            pause = min(self.backoff * 2**attempt, _MAX_BACKOFF)
            if attempt >= self.retries or not replayable() or time.monotonic() + pause + _MIN_ATTEMPT > deadline:
                raise self._unavailable(command, failure, attempts=attempt + 1) from failure
            time.sleep(pause)
            attempt += 1

    def _read_all(self, command: str, response: httpx.Response) -> None:
        try:
            response.read()
        except httpx.TransportError as exc:
            raise self._unavailable(command, exc, attempts=1) from exc
        finally:
            response.close()

    def _command_error(self, command: str, params: Params, message: str) -> StorageError:
        arg = str(params.get("arg", "")).removeprefix("/ipfs/")
        if any(marker in message.lower() for marker in _NOT_FOUND_MARKERS):
            return BlobNotFound(f"{self!r} does not hold blob {arg} ({command}: {message})")
        return StorageError(f"{self!r} refused {command} for {arg}: {message}")

    def _unavailable(self, command: str, exc: Exception, *, attempts: int) -> StorageUnavailable:
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(exc, httpx.TimeoutException):
            return StorageUnavailable(
                f"IPFS node at {self.api_url} did not answer {command} within {self.timeout:g}s ({tries}); "
                "it may be overloaded or stuck: check the node, or raise the timeout"
            )
        if isinstance(exc, httpx.HTTPStatusError):
            return StorageUnavailable(
                f"IPFS node at {self.api_url} kept failing {command} ({exc}, {tries}); check the node's logs"
            )
        return StorageUnavailable(
            f"cannot reach the IPFS (Kubo) RPC API at {self.api_url} for {command} after {tries} "
            f"({type(exc).__name__}: {exc}); "
            "start the node (`ehr node up`, or `ipfs daemon`) or fix the API URL"
        )


def _boundary() -> str:
    return f"ehr-{secrets.token_hex(16)}"


def _part_head(boundary: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="blob"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def _part_tail(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("X-Content-Length")
    return int(value) if value is not None and value.isdigit() else None


def _json_lines(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise StorageError(f"IPFS node answered with malformed JSON: {exc}") from exc
    objects = [line for line in lines if isinstance(line, dict)]
    if not objects:
        raise StorageError("IPFS node answered with no JSON object")
    return objects


def _kubo_error(response: httpx.Response) -> str | None:
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(payload, dict) and payload.get("Type") == "error" and isinstance(payload.get("Message"), str):
        return str(payload["Message"])
    return None
