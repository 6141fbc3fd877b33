"""Opaque (non-FHIR) records: PDFs, DICOM files, images and genomic files, stored as they are.

Only minimal sanity is checked, to catch a file filed under the wrong category:

=========  ===================================  ==============================================
category   check                                media type
=========  ===================================  ==============================================
pdf        starts with ``%PDF-``                application/pdf
dicom      ``DICM`` at byte 128 (DICOM Part 10)  application/dicom
image      PNG or JPEG signature                image/png, image/jpeg
genomic    non-empty                            application/octet-stream
document   non-empty                            application/octet-stream
=========  ===================================  ==============================================

Every category must be non-empty. A file given by path is not read into memory: only its first
bytes are sniffed, so multi-gigabyte DICOM or genomic files can be streamed by the crypto layer
(``OpaqueRecord.open()``). The file may change after it was checked; whoever encrypts it hashes
what it actually read.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from ehr_client.errors import InvalidRecord
from ehr_client.records.scopes import ALL_SCOPES, Scope, scope_for_category

__all__ = ["OpaqueRecord", "load_opaque"]

_SNIFF_BYTES: Final = 132
_PNG: Final = b"\x89PNG\r\n\x1a\n"
_JPEG: Final = b"\xff\xd8\xff"


@dataclass(frozen=True)
class OpaqueRecord:
    """A checked opaque file: exactly one of `path` and `data` is set (`data` is not in repr)."""

    category: str
    scope: Scope
    media_type: str
    size: int
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)

    def open(self) -> BinaryIO:
        """Open the content for streaming reads; the caller closes it."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")


def load_opaque(source: bytes | os.PathLike[str], category: str, *, scope: Scope | None = None) -> OpaqueRecord:
    """Check an opaque file against its declared `category` and return it with its scope.

    `scope` overrides the category's default scope, e.g. ``Scope.MENTAL_HEALTH`` for a PDF of a
    psychotherapy note.

    Raises:
        InvalidRecord: unknown category, unreadable or empty file, content that does not match
            the category, or a `scope` outside the defined bits.
    """
    name = category.strip().lower()
    default_scope = scope_for_category(name)
    if scope is not None and (not scope or int(scope) & ~int(ALL_SCOPES)):
        raise InvalidRecord("the scope of an opaque record must be one or more defined categories")
    data: bytes | None = None
    path: Path | None = None
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        size, head = len(data), data[:_SNIFF_BYTES]
    else:
        path = Path(source)
        size, head = _stat_and_head(path)
    if size == 0:
        raise InvalidRecord(f"the {name} file is empty: choose the file that holds the content")
    return OpaqueRecord(
        category=name,
        scope=scope if scope is not None else default_scope,
        media_type=_media_type(name, head),
        size=size,
        path=path,
        data=data,
    )


def _stat_and_head(path: Path) -> tuple[int, bytes]:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # before open(): opening a FIFO would block
            raise InvalidRecord(f"{path.name!r} is not a regular file: choose a file")
        with path.open("rb") as handle:
            return os.fstat(handle.fileno()).st_size, handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InvalidRecord(f"cannot read {path.name!r}: {exc.strerror or type(exc).__name__}") from None


def _media_type(category: str, head: bytes) -> str:
    if category == "pdf":
        if not head.startswith(b"%PDF-"):
            raise InvalidRecord("the file is declared pdf but does not start with %PDF-: check the file or its category")
        return "application/pdf"
    if category == "dicom":
        if head[128:132] != b"DICM":
            raise InvalidRecord(
                "the file is declared dicom but has no DICM marker at byte 128 (not a DICOM Part 10 file): "
                "check the file or its category"
            )
        return "application/dicom"
    if category == "image":
        if head.startswith(_PNG):
            return "image/png"
        if head.startswith(_JPEG):
            return "image/jpeg"
        raise InvalidRecord("the file is declared image but is neither PNG nor JPEG: check the file or its category")
    return "application/octet-stream"
