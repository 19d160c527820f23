"""Receiving content (detection by bytes, hostile archives and XML, size limits, file names) and the
segmented encryption, as plain unit tests without a database."""

from __future__ import annotations

import io
import os
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repository.content import (
    ArchiveLimits,
    ContentStager,
    StagedContent,
    detect_media_type,
    safe_filename,
    stage_stream,
)
from repository.crypto import (
    SEGMENT,
    TAG,
    KeyRing,
    decrypt_range,
    encrypt_stream,
    encrypted_size,
    new_data_key,
)
from repository.errors import ContentTooLargeError, IntegrityError, UnsafeContentError

MIB = 1024 * 1024
LIMITS = ArchiveLimits(max_uncompressed=512 * MIB, max_entries=10_000, max_ratio=100)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
DOCUMENT_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    "<w:body><w:p><w:r><w:t>Dear customer</w:t></w:r></w:p></w:body></w:document>"
)
XXE = '<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


def _stage(data: bytes, tmp_path: Path, filename: str = "upload.bin") -> StagedContent:
    return stage_stream(iter([data]), max_bytes=200 * MIB, tmp_dir=tmp_path, filename=filename)


def _detect(data: bytes, tmp_path: Path, filename: str = "upload.bin", limits: ArchiveLimits = LIMITS) -> str:
    return detect_media_type(_stage(data, tmp_path, filename), limits)


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def _docx(document_xml: str = DOCUMENT_XML) -> bytes:
    return _zip({"[Content_Types].xml": CONTENT_TYPES.encode(), "word/document.xml": document_xml.encode()})


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


# --- detection by bytes, not by name ------------------------------------------------------------------------------


def test_pdf_is_recognised_by_its_bytes_whatever_its_name(tmp_path) -> None:  # noqa: ANN001
    assert _detect(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n", tmp_path, "notes.txt") == "application/pdf"


def test_png_is_recognised_by_its_bytes_whatever_its_name(tmp_path) -> None:  # noqa: ANN001
    assert _detect(_png(), tmp_path, "letter.pdf") == "image/png"


def test_plain_text_named_pdf_is_plain_text(tmp_path) -> None:  # noqa: ANN001
    assert _detect("Dear Sir or Madam,\nthank you — gr\u00fc\u00dfe.\n".encode(), tmp_path, "invoice.pdf") == (
        "text/plain")


def test_html_is_recognised(tmp_path) -> None:  # noqa: ANN001
    assert _detect(b"<!DOCTYPE html>\n<html><body>hi</body></html>", tmp_path, "page.txt") == "text/html"


def test_xml_is_recognised(tmp_path) -> None:  # noqa: ANN001
    assert _detect(b'<?xml version="1.0"?>\n<claim id="1"/>', tmp_path, "claim.txt") == "application/xml"


def test_docx_is_recognised_by_its_parts_whatever_its_name(tmp_path) -> None:  # noqa: ANN001
    assert _detect(_docx(), tmp_path, "scan.pdf") == DOCX


def test_zip_without_office_parts_is_just_a_zip(tmp_path) -> None:  # noqa: ANN001
    assert _detect(_zip({"a.txt": b"hello"}), tmp_path, "letter.docx") == "application/zip"


def test_large_spooled_upload_is_still_detected_by_its_first_bytes(tmp_path) -> None:  # noqa: ANN001
    data = b"%PDF-1.4\n" + os.urandom(3 * MIB)
    staged = stage_stream(iter([data[i : i + 100_000] for i in range(0, len(data), 100_000)]), max_bytes=10 * MIB,
                          tmp_dir=tmp_path, filename="big.bin")
    assert staged.path is not None
    assert detect_media_type(staged, LIMITS) == "application/pdf"


# --- hostile content -------------------------------------------------------------------------------------------


def test_docx_with_a_doctype_is_refused(tmp_path) -> None:  # noqa: ANN001
    hostile = DOCUMENT_XML.replace("<w:document", XXE + "<w:document", 1)
    with pytest.raises(UnsafeContentError):
        _detect(_docx(hostile), tmp_path, "letter.docx")


def test_zip_bomb_is_refused_by_compression_ratio(tmp_path) -> None:  # noqa: ANN001
    bomb = _zip({"zeros.bin": bytes(50 * MIB)})
    assert len(bomb) < MIB
    with pytest.raises(UnsafeContentError, match="ratio"):
        _detect(bomb, tmp_path, limits=ArchiveLimits(max_uncompressed=512 * MIB, max_entries=10_000, max_ratio=100))


def test_archive_expanding_past_the_size_limit_is_refused(tmp_path) -> None:  # noqa: ANN001
    archive = _zip({f"part{i}.bin": os.urandom(64 * 1024) for i in range(4)}, zipfile.ZIP_STORED)
    with pytest.raises(UnsafeContentError):
        _detect(archive, tmp_path, limits=ArchiveLimits(max_uncompressed=200 * 1024, max_entries=100, max_ratio=100))


def test_archive_with_too_many_entries_is_refused(tmp_path) -> None:  # noqa: ANN001
    archive = _zip({f"f{i}.txt": b"x" for i in range(11)})
    limits = ArchiveLimits(max_uncompressed=512 * MIB, max_entries=10, max_ratio=100)
    with pytest.raises(UnsafeContentError, match="entries"):
        _detect(archive, tmp_path, limits=limits)
    assert _detect(_zip({f"f{i}.txt": b"x" for i in range(10)}), tmp_path, limits=limits) == "application/zip"


def test_corrupt_zip_is_refused(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(UnsafeContentError):
        _detect(b"PK\x03\x04" + os.urandom(500), tmp_path)


def test_xml_with_an_entity_declaration_is_refused(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(UnsafeContentError):
        _detect(f'<?xml version="1.0"?>\n{XXE}\n<foo>&xxe;</foo>'.encode(), tmp_path, "data.xml")


def test_xml_entity_far_past_the_first_bytes_is_refused(tmp_path) -> None:  # noqa: ANN001
    # Put the declaration across the 1 MiB read boundary of the spool.
    prefix = b'<?xml version="1.0"?>\n<!-- '
    pad = b"a" * (MIB - len(prefix) - 7)
    data = prefix + pad + b" -->" + b'<!ENTITY lol "lol"><r/>'
    assert data.index(b"<!ENTITY") < MIB < data.index(b"<!ENTITY") + 8
    with pytest.raises(UnsafeContentError):
        _detect(data, tmp_path, "big.xml")


# --- staging limits and spool files ----------------------------------------------------------------------------


def test_stager_stops_as_soon_as_the_limit_is_passed_and_leaves_no_spool_file(tmp_path) -> None:  # noqa: ANN001
    spool = tmp_path / "spool"
    chunk = b"z" * (512 * 1024)
    sent = 0

    def upload() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 1
            yield chunk

    with pytest.raises(ContentTooLargeError):
        stage_stream(upload(), max_bytes=3 * MIB, tmp_dir=spool)
    assert sent == 7  # 3.5 MiB: the first chunk over the limit, not one more
    assert list(spool.iterdir()) == []


def test_stager_write_raises_on_the_chunk_that_passes_the_limit(tmp_path) -> None:  # noqa: ANN001
    stager = ContentStager(max_bytes=2 * MIB, tmp_dir=tmp_path)
    stager.write(b"a" * (2 * MIB))
    assert list(tmp_path.iterdir())  # spooled to disk by now
    with pytest.raises(ContentTooLargeError):
        stager.write(b"b")
    assert list(tmp_path.iterdir()) == []


def test_upload_exactly_at_the_limit_is_accepted(tmp_path) -> None:  # noqa: ANN001
    staged = stage_stream(iter([b"q" * 1000]), max_bytes=1000, tmp_dir=tmp_path)
    assert staged.size == 1000 and b"".join(staged.chunks()) == b"q" * 1000


def test_released_staged_content_removes_its_spool_file(tmp_path) -> None:  # noqa: ANN001
    staged = stage_stream(iter([os.urandom(2 * MIB)]), max_bytes=10 * MIB, tmp_dir=tmp_path)
    assert staged.path is not None and staged.path.exists()
    staged.release()
    assert list(tmp_path.iterdir()) == []


# --- file names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given_name", "kept"), [
    ("../../etc/passwd", "passwd"),
    ("C:\\x\\y.txt", "y.txt"),
    ("/absolute/path/report.pdf", "report.pdf"),
    ("dir/..", ""),
    ("..", ""),
    ("a\x00b\nc\r\td.txt", "abcd.txt"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ("Stra\u00dfe \u00e9t\u00e9.docx", "Stra\u00dfe \u00e9t\u00e9.docx"),
    (None, ""),
])
def test_safe_filename_keeps_only_a_harmless_last_component(given_name: str | None, kept: str) -> None:
    assert safe_filename(given_name) == kept


def test_safe_filename_is_bounded() -> None:
    assert len(safe_filename("x" * 1000 + ".txt")) == 255


# --- segmented encryption --------------------------------------------------------------------------------------


def _encrypt(key: bytes, data: bytes, segment: int = SEGMENT) -> bytes:
    pieces = (data[i : i + 70_001] for i in range(0, len(data), 70_001)) if data else iter([b""])
    return b"".join(encrypt_stream(key, pieces, segment))


def _reader(stored: bytes, piece: int = 50_000):  # noqa: ANN202
    def read(offset: int, length: int | None) -> Iterator[bytes]:
        window = stored[offset : None if length is None else offset + length]
        for i in range(0, len(window), piece):
            yield window[i : i + piece]

    return read


def _decrypt(key: bytes, stored: bytes, size: int, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(decrypt_range(key, _reader(stored), size, start, end))


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 77])
def test_encrypt_decrypt_round_trip(size: int) -> None:
    key, data = new_data_key(), os.urandom(size)
    stored = _encrypt(key, data)
    assert len(stored) == encrypted_size(size)
    assert _decrypt(key, stored, size) == data


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=700), bounds=st.tuples(st.integers(0, 800), st.integers(0, 800)),
       segment=st.sampled_from([16, 64, 100]))
def test_any_byte_range_decrypts_exactly(data: bytes, bounds: tuple[int, int], segment: int) -> None:
    start, end = sorted(bounds)
    start = min(start, len(data))
    key = new_data_key()
    stored = _encrypt(key, data, segment)
    assert len(stored) == encrypted_size(len(data), segment)
    assert _decrypt(key, stored, len(data), start, end) == data[start:end]


@pytest.mark.parametrize("size", [0, SEGMENT, 2 * SEGMENT, 2 * SEGMENT + 1])
def test_empty_range_at_the_end_reads_nothing_without_a_false_integrity_alarm(size: int) -> None:
    key, data = new_data_key(), os.urandom(size)
    stored = _encrypt(key, data)
    assert _decrypt(key, stored, size, size, None) == b""
    assert _decrypt(key, stored, size, size, size) == b""
    assert _decrypt(key, stored, size, size - 1 if size else 0, None) == data[-1:]


def test_truncating_the_ciphertext_by_one_segment_is_detected() -> None:
    key, data = new_data_key(), os.urandom(3 * SEGMENT + 500)
    stored = _encrypt(key, data)
    with pytest.raises(IntegrityError):
        _decrypt(key, stored[: -(500 + TAG)], len(data))
    with pytest.raises(IntegrityError):
        _decrypt(key, stored[: -(500 + TAG + SEGMENT + TAG)], len(data))


def test_dropping_the_last_segment_and_claiming_a_shorter_size_is_detected() -> None:
    # Without the last-segment flag in the nonce, an attacker who also lowered the recorded size could truncate.
    key, data = new_data_key(), os.urandom(2 * SEGMENT + 10)
    stored = _encrypt(key, data)
    with pytest.raises(IntegrityError):
        _decrypt(key, stored[: -(10 + TAG)], 2 * SEGMENT)


def test_reordered_segments_are_detected() -> None:
    key, data = new_data_key(), os.urandom(3 * SEGMENT)
    stored = _encrypt(key, data)
    header = len(stored) - 3 * (SEGMENT + TAG)
    s = [stored[header + i * (SEGMENT + TAG) : header + (i + 1) * (SEGMENT + TAG)] for i in range(3)]
    swapped = stored[:header] + s[1] + s[0] + s[2]
    with pytest.raises(IntegrityError):
        _decrypt(key, swapped, len(data))


def test_wrong_data_key_cannot_decrypt() -> None:
    data = b"confidential letter"
    stored = _encrypt(new_data_key(), data)
    with pytest.raises(IntegrityError):
        _decrypt(new_data_key(), stored, len(data))


def test_same_plaintext_encrypts_differently_each_time() -> None:
    key, data = new_data_key(), b"same words" * 100
    assert _encrypt(key, data) != _encrypt(key, data)


# --- the key ring ----------------------------------------------------------------------------------------------


def test_key_ring_is_created_once_when_first_used_concurrently(tmp_path) -> None:  # noqa: ANN001
    # A fresh install whose first requests (or serve and worker starting together) all open the ring at once:
    # every data key wrapped by any of them must stay unwrappable from the ring on disk.
    path, threads_n = tmp_path / "keys" / "keyring.json", 8
    barrier = threading.Barrier(threads_n)
    wrapped: list[tuple[bytes, str, bytes]] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            barrier.wait(timeout=30)
            ring, dek = KeyRing(path), new_data_key()
            wrapped.append((dek, *ring.wrap(dek, context="document:x")))
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [], "\n".join(map(str, errors))
    on_disk = KeyRing(path)
    assert len(on_disk.key_ids()) == 1
    for dek, kek_id, blob in wrapped:
        assert on_disk.unwrap(kek_id, blob, context="document:x") == dek


def test_rotated_key_ring_still_unwraps_keys_wrapped_before(tmp_path) -> None:  # noqa: ANN001
    ring, dek = KeyRing(tmp_path / "keyring.json"), new_data_key()
    old_kek, blob = ring.wrap(dek, context="document:y")
    new_kek = ring.add_key()
    reloaded = KeyRing(tmp_path / "keyring.json")
    assert reloaded.active_id == new_kek != old_kek
    assert reloaded.unwrap(old_kek, blob, context="document:y") == dek
    with pytest.raises(IntegrityError):
        reloaded.unwrap(old_kek, blob, context="document:other")


def test_docx_with_a_utf16_doctype_is_refused(tmp_path) -> None:  # noqa: ANN001
    xml = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><d>&e;</d>'
    for encoding in ("utf-16", "utf-16-be"):
        data = _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": xml.encode(encoding)})
        with pytest.raises(UnsafeContentError, match="DOCTYPE"):
            _detect(data, tmp_path, "letter.docx")


def test_utf16_xml_upload_with_an_entity_is_refused(tmp_path) -> None:  # noqa: ANN001
    xml = '<?xml version="1.0" encoding="UTF-16"?>\n<!ENTITY x "y"><a/>'
    with pytest.raises(UnsafeContentError):
        _detect(xml.encode("utf-16"), tmp_path, "data.xml")


def test_archive_with_an_unreadable_mimetype_entry_is_refused_not_crashing(tmp_path) -> None:  # noqa: ANN001
    data = bytearray(_zip({"mimetype": b"application/vnd.oasis.opendocument.text"}, zipfile.ZIP_STORED))
    # Declare an unsupported compression method (99) in both headers of the only entry.
    data[8:10] = struct.pack("<H", 99)
    central = data.index(b"PK\x01\x02")
    data[central + 10 : central + 12] = struct.pack("<H", 99)
    with pytest.raises(UnsafeContentError, match="mimetype"):
        _detect(bytes(data), tmp_path, "x.odt")
