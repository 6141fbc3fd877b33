"""Uniform "give me the next n bytes" reading over buffers, binary files and iterables of bytes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol, TypeAlias, Union, cast

BytesLike: TypeAlias = Union[bytes, bytearray, memoryview]
ByteSource: TypeAlias = Union[BytesLike, BinaryIO, Iterable[BytesLike]]
"""Bytes in memory, a binary file opened for reading, or an iterable of byte pieces of any size."""


class Reader(Protocol):
    def fill(self, n: int) -> memoryview:
        """Return the next `n` bytes, or fewer only at end of input; the view is valid until the next call."""
        ...


class _BufferReader:
    """Zero-copy slices of an in-memory buffer."""

    def __init__(self, data: BytesLike) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def fill(self, n: int) -> memoryview:
        start = self._pos
        self._pos = min(start + n, len(self._view))
        return self._view[start : self._pos]


class _FileReader:
    """`readinto` into one reused buffer, looping over short reads (pipes, sockets)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._readinto = getattr(file, "readinto", None)
        self._buf = bytearray()

    def fill(self, n: int) -> memoryview:
        if len(self._buf) < n:
            self._buf = bytearray(n)
        view = memoryview(self._buf)[:n]
        filled = 0
        while filled < n:
            if self._readinto is not None:
                got = self._readinto(view[filled:])
            else:
                piece = self._file.read(n - filled)
                got = len(piece)
                view[filled : filled + got] = piece
            if got is None:
                raise BlockingIOError("the source is non-blocking and has no data ready: pass a blocking file")
            if got == 0:
                break
            filled += got
        return view[:filled]


class _IterableReader:
    """Re-chunks an iterable of byte pieces; zero-copy when a piece already holds the next n bytes."""

    def __init__(self, pieces: Iterable[BytesLike]) -> None:
        self._pieces = iter(pieces)
        self._piece = memoryview(b"")
        self._buf = bytearray()

    def fill(self, n: int) -> memoryview:
        if len(self._piece) >= n:
            out, self._piece = self._piece[:n], self._piece[n:]
            return out
        if len(self._buf) < n:
            self._buf = bytearray(n)
        view = memoryview(self._buf)
        filled = 0
        while filled < n:
            if not self._piece:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._piece = memoryview(piece).cast("B")
                continue
            take = min(n - filled, len(self._piece))
            view[filled : filled + take] = self._piece[:take]
            self._piece = self._piece[take:]
            filled += take
        return view[:filled]


def open_source(source: ByteSource) -> Reader:
    """Pick the reader for `source`; buffers are checked first since bytes are also iterable."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _BufferReader(source)
    if hasattr(source, "readinto") or hasattr(source, "read"):
        return _FileReader(cast(BinaryIO, source))
    return _IterableReader(source)


def iter_views(reader: Reader, size: int) -> Iterator[memoryview]:
    """Views of `size` bytes until a short (possibly empty) one, which is always yielded last."""
    while True:
        view = reader.fill(size)
        yield view
        if len(view) < size:
            return
