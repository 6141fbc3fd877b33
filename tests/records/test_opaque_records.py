"""load_opaque: a file must be what its category says, and must not be empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehr_client.errors import InvalidRecord
from ehr_client.records import OpaqueRecord, Scope, load_opaque

PDF = b"%PDF-1.7\n%synthetic\n"
DICOM = b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


@pytest.mark.parametrize(
    ("data", "category", "scope", "media_type"),
    [(PDF, "pdf", Scope.DOCUMENTS, "application/pdf"), (DICOM, "dicom", Scope.IMAGING, "application/dicom"),
     (PNG, "image", Scope.IMAGING, "image/png"), (b"##fileformat=VCFv4.3\n", "genomic", Scope.GENOMICS, "application/octet-stream")],
)
def test_matching_file_loads_with_category_scope(data: bytes, category: str, scope: Scope, media_type: str) -> None:
    record = load_opaque(data, category)

    assert (record.category, record.scope, record.media_type, record.size) == (category, scope, media_type, len(data))


@pytest.mark.parametrize(("data", "category"), [(DICOM, "pdf"), (PDF, "dicom"), (b"\x00" * 131 + b"D", "dicom"), (PDF, "image")])
def test_file_that_is_not_its_category_is_rejected(data: bytes, category: str) -> None:
    with pytest.raises(InvalidRecord, match=f"declared {category}"):
        load_opaque(data, category)


@pytest.mark.parametrize("category", ["pdf", "genomic", "document"])
def test_empty_file_is_rejected(category: str) -> None:
    with pytest.raises(InvalidRecord, match="empty"):
        load_opaque(b"", category)


def test_unknown_category_is_rejected() -> None:
    with pytest.raises(InvalidRecord, match="use one of"):
        load_opaque(PDF, "spreadsheet")


def test_path_is_sniffed_and_streamed_not_held(tmp_path: Path) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(DICOM + b"\x01" * 10_000)

    record = load_opaque(path, "dicom")
    with record.open() as handle:
        content = handle.read()

    assert record.data is None and record.size == len(content) == len(DICOM) + 10_000
    assert content == path.read_bytes()


def test_bytes_record_streams_its_data() -> None:
    with load_opaque(PDF, "pdf").open() as handle:
        assert handle.read() == PDF


def test_scope_override_marks_a_pdf_mental_health() -> None:
    assert load_opaque(PDF, "pdf", scope=Scope.MENTAL_HEALTH).scope == Scope.MENTAL_HEALTH


@pytest.mark.parametrize("scope", [Scope(0), Scope(1 << 14)])
def test_scope_override_outside_defined_bits_is_rejected(scope: Scope) -> None:
    with pytest.raises(InvalidRecord, match="scope"):
        load_opaque(PDF, "pdf", scope=scope)


def test_missing_or_non_regular_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidRecord, match="cannot read"):
        load_opaque(tmp_path / "absent.pdf", "pdf")
    with pytest.raises(InvalidRecord, match="not a regular file"):
        load_opaque(tmp_path, "pdf")


def test_repr_hides_content() -> None:
    record: OpaqueRecord = load_opaque(b"%PDF-1.7 SECRET", "pdf")

    assert "SECRET" not in repr(record)
