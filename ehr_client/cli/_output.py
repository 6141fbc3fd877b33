"""Consoles, short forms, JSON output and progress bars shared by the commands.

Results go to stdout; hints, warnings and progress to stderr, so `ehr … > file` and pipes see
only the result. Nothing here prints record contents.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Annotated, Any

import typer

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from ehr_client.text import short, when
from ehr_client.chain.client import TxResult
from ehr_client.storage import BlobStore, Cid

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
PROGRESS_THRESHOLD = 4 << 20  # bytes; smaller transfers finish before a bar would be useful


_PIPE_WIDTH = 200  # when not a terminal, tables keep full addresses instead of folding at 80 columns


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=_PIPE_WIDTH)
    return console


def out() -> Console:
    """Stdout console, created per use so test runners that swap sys.stdout see the output."""
    return _console(stderr=False)


def err() -> Console:
    return _console(stderr=True)


def hexid(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def tx_line(tx: TxResult | None) -> str:
    if tx is None:
        return "already on chain"
    return f"tx {tx.tx_hash}, block {tx.block_number}, {tx.gas_used:,} gas"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=console, transient=True,
    )


class ProgressStore:
    """A BlobStore that shows a progress bar on stderr for large uploads and downloads.

    `expected_upload` is set by the caller (the plaintext file size) before a streamed write.
    Streaming header reads (`iter_get`) pass through untouched.
    """

    def __init__(self, inner: BlobStore, *, console: Console | None = None) -> None:
        self.inner = inner
        self.console = console or err()
        self.expected_upload: int | None = None

    def _enabled(self, size: int | None) -> bool:
        return self.console.is_terminal and size is not None and size >= PROGRESS_THRESHOLD

    def put(self, data: bytes) -> Cid:
        return self.inner.put(data)

    def put_stream(self, chunks: Iterable[bytes]) -> Cid:
        size = self.expected_upload
        if not self._enabled(size):
            return self.inner.put_stream(chunks)
        with _progress(self.console) as bar:
            task = bar.add_task("encrypting + uploading", total=size)

            def counted() -> Iterator[bytes]:
                for chunk in chunks:
                    bar.advance(task, len(chunk))
                    yield chunk

            return self.inner.put_stream(counted())

    def get(self, cid: Cid) -> bytes:
        if not self.console.is_terminal:
            return self.inner.get(cid)
        size = self.inner.size(cid)
        if not self._enabled(size):
            return self.inner.get(cid)
        parts: list[bytes] = []
        with _progress(self.console) as bar:
            task = bar.add_task("downloading", total=size)
            for chunk in self.inner.iter_get(cid):  # verified against the CID when the iterator ends
                parts.append(chunk)
                bar.advance(task, len(chunk))
        return b"".join(parts)

    def iter_get(self, cid: Cid) -> Iterator[bytes]:
        return self.inner.iter_get(cid)

    def has(self, cid: Cid) -> bool:
        return self.inner.has(cid)

    def remove(self, cid: Cid) -> None:
        self.inner.remove(cid)

    def size(self, cid: Cid) -> int:
        return self.inner.size(cid)

    def group_commit(self) -> AbstractContextManager[Callable[[], int] | None]:
        return self.inner.group_commit()

    def include_in_barrier(self, cid: Cid) -> None:
        self.inner.include_in_barrier(cid)
