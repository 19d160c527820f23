"""Text extraction for the search index: every format from real files, broken files, limits, time limit, workers."""

from __future__ import annotations

import io
import os
import signal
import tempfile
import threading
import time
import zipfile

import docx
import pytest

from search.extract import DOCX, Extraction, extract_text, register
from tests.search.corpus import docx_bytes, eml_bytes, opener, pdf_bytes

SLOW = "application/x-postroom-test-slow"
CRASH = "application/x-postroom-test-crash"
ENDLESS = "application/x-postroom-test-endless"
register(SLOW, "tests.search.corpus:slow_extract")
register(CRASH, "tests.search.corpus:crashing_extract")
register(ENDLESS, "tests.search.corpus:endless_extract")


def extract(data: bytes, media_type: str, **kwargs: object) -> Extraction:
    return extract_text(opener(data), media_type=media_type, size=len(data), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """Spool files go to a directory of the test's own, which must be empty again after each extraction."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield tmp_path
    assert [name for name in os.listdir(tmp_path) if name.startswith("postroom-extract-")] == []


# --- formats -------------------------------------------------------------------------------------------------


def test_docx_gives_paragraphs_table_cells_header_and_footer_in_order() -> None:
    data = docx_bytes(paragraphs=["Dear Ms  Kowalski,", "your   claim 4711 is accepted."],
                      table=[["Policy", "PX-88"], ["Amount", "1.250,00 EUR"]],
                      header="Northwind Insurance", footer="Page footer text")
    result = extract(data, DOCX)
    assert result == Extraction(
        "Dear Ms Kowalski,\nyour claim 4711 is accepted.\nPolicy\nPX-88\nAmount\n1.250,00 EUR\n"
        "Northwind Insurance\nPage footer text", "ok", None)


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def test_docx_merged_cells_content_controls_links_and_tracked_changes() -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Merged heading"
    table.cell(1, 0).text = "left"
    table.cell(1, 1).text = "right"
    body = document.element.body
    body.insert(0, docx.oxml.parse_xml(
        f"<w:sdt {W}><w:sdtContent><w:p><w:r><w:t>Inside a content control</w:t></w:r></w:p></w:sdtContent></w:sdt>"))
    body.insert(1, docx.oxml.parse_xml(
        f'<w:p {W}><w:r><w:t xml:space="preserve">See </w:t></w:r><w:hyperlink><w:r><w:t>our terms</w:t></w:r>'
        f"</w:hyperlink><w:r><w:tab/><w:t>and</w:t></w:r><w:ins><w:r><w:t> added</w:t></w:r></w:ins>"
        f"<w:del><w:r><w:delText> removed</w:delText></w:r></w:del></w:p>"))
    out = io.BytesIO()
    document.save(out)
    result = extract(out.getvalue(), DOCX)
    assert result.status == "ok"
    assert result.text.split("\n") == ["Inside a content control", "See our terms and added", "Merged heading",
                                       "left", "right"]


def test_pdf_text_of_every_page() -> None:
    result = extract(pdf_bytes([["Invoice 4711 (copy)", "Anna Kowalski"], ["Second page: total 99"]]),
                     "application/pdf")
    assert result == Extraction("Invoice 4711 (copy)\nAnna Kowalski\nSecond page: total 99", "ok", None)


def test_pdf_without_text_layer_is_empty_not_failed() -> None:
    assert extract(pdf_bytes([[], []]), "application/pdf") == Extraction("", "empty", None)


def test_plain_text_decoding_bom_declared_charset_and_replacement() -> None:
    assert extract("\ufeffMüller  Straße\r\n\r\n\tZeile 2".encode(), "text/plain").text == "Müller Straße\nZeile 2"
    assert extract("Grüße".encode("latin-1"), "text/plain; charset=ISO-8859-1").text == "Grüße"
    assert extract("Grüße".encode("utf-16"), "text/plain").text == "Grüße"
    # cp1252 without a declaration (no charset detector installed): still text, the bad byte replaced
    assert extract("Grüße aus Köln".encode("cp1252"), "text/plain") == Extraction(
        "Gr\ufffd\ufffde aus K\ufffdln", "ok", None)


def test_control_characters_become_whitespace() -> None:
    assert extract(b"a\x00b\x07 \x1b c", "text/plain").text == "a b c"


def test_csv_is_read_as_text() -> None:
    result = extract(b"name;city\nKowalski;Gdansk\n", "text/csv")
    assert result == Extraction("name;city\nKowalski;Gdansk", "ok", None)


def test_html_skips_script_and_style_decodes_entities_and_separates_blocks() -> None:
    page = (b"<!doctype html><html><head><meta charset='windows-1252'><title>Statement</title>"
            b"<style>p {color: red}</style><script>var secret = 'nope';</script></head>"
            b"<body><p>Dear <b>Ms</b> K\xf6nig,</p><div>balance &amp; interest&nbsp;due</div>"
            b"<ul><li>one</li><li>two</li></ul></body></html>")
    result = extract(page, "text/html")
    assert result == Extraction("Statement\nDear Ms König,\nbalance & interest due\none\ntwo", "ok", None)


def test_html_split_across_read_chunks_keeps_words_whole() -> None:
    filler = "x" * (64 * 1024 - 20)
    page = f"<p>{filler}</p><p>Kowal<i>ski</i> and Nowak</p>".encode()
    result = extract(page, "text/html")
    assert result.text.endswith("\nKowalski and Nowak")


def test_eml_headers_html_body_and_attachment_name_not_content() -> None:
    data = eml_bytes(html="<html><body><p>Please refund <b>invoice 4711</b>.</p><script>track()</script>"
                          "</body></html>",
                     attachment=("scan-of-invoice.pdf", pdf_bytes([["SECRET ATTACHMENT TEXT"]])))
    result = extract(data, "message/rfc822")
    assert result.status == "ok"
    assert result.text.split("\n") == [
        "From: Anna Kowalski <anna@example.org>", "To: service@postroom.example",
        "Subject: Complaint about invoice 4711", "Date: Tue, 04 Mar 2025 10:15:00 +0100",
        "Please refund invoice 4711.", "Attachment: scan-of-invoice.pdf"]


def test_eml_alternative_parts_are_read_once() -> None:
    data = eml_bytes(html="<p>The <i>full</i> letter</p>", plain="The full letter")
    result = extract(data, "message/rfc822")
    assert result.text.count("full letter") == 1


def test_json_keys_and_values_in_order() -> None:
    data = b'{"customer": {"name": "Anna \\u00d6z", "vip": true}, "tags": ["late", 3], "note": null}'
    assert extract(data, "application/json") == Extraction("customer\nname: Anna \u00d6z\ntags\nlate\n3", "ok", None)


def test_xml_text_content_only() -> None:
    data = b'<?xml version="1.0"?><letter id="7"><to>Anna</to><body>Your <em>claim</em> is paid.</body></letter>'
    assert extract(data, "application/xml") == Extraction("Anna Your claim is paid.", "ok", None)


def test_generic_media_type_is_judged_by_file_name() -> None:
    data = docx_bytes(paragraphs=["from the file name"])
    result = extract_text(opener(data), media_type="application/octet-stream", size=len(data),
                          filename="Letter.DOCX")
    assert result.text == "from the file name"


def test_unsupported_media_type_is_not_read() -> None:
    open_content = opener(b"\x89PNG\r\n")
    result = extract_text(open_content, media_type="image/png", size=6)
    assert (result.status, result.text) == ("unsupported", "")
    assert "image/png" in result.error
    assert open_content.opened == 0


# --- broken and hostile files ------------------------------------------------------------------------------------

_GOOD_PDF = pdf_bytes([["Invoice 4711"] * 3] * 3)
_NOT_DOCX_ZIP = io.BytesIO()
with zipfile.ZipFile(_NOT_DOCX_ZIP, "w") as _zip:
    _zip.writestr("readme.txt", "just a zip")
_BINARY = bytes(range(256)) * 40
_BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                   b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>')


@pytest.mark.parametrize(("data", "media_type", "reason"), [
    (_GOOD_PDF[: len(_GOOD_PDF) // 2], "application/pdf", "PDF unreadable"),
    (b"%PDF-1.4\nthis is not really a PDF", "application/pdf", "PDF unreadable"),
    (_NOT_DOCX_ZIP.getvalue(), DOCX, "not a Word document"),
    (b"PK\x03\x04 not really a zip", DOCX, "not a ZIP archive"),
    (docx_bytes(paragraphs=["cut"])[:-100], DOCX, "not a ZIP archive"),
    (_BINARY, "text/plain", "binary content"),
    (b"ok \xc3\x28 \xe2\x82" * 2000, "text/csv", "binary content"),
    (_BINARY, "text/html", "binary content"),
    (_BINARY, "message/rfc822", "not an e-mail"),
    (b'{"name": "Anna", ', "application/json", "not valid JSON"),
    (b"<a><b>unclosed</a>", "application/xml", "not well-formed"),
    (_BILLION_LAUGHS, "application/xml", "EntitiesForbidden"),
], ids=["pdf-truncated", "pdf-garbage", "docx-other-zip", "docx-not-zip", "docx-truncated", "text-binary",
        "csv-invalid-utf8", "html-garbage", "eml-garbage", "json-broken", "xml-malformed", "xml-entities"])
def test_broken_file_fails_with_a_short_reason(data: bytes, media_type: str, reason: str) -> None:
    result = extract(data, media_type)
    assert (result.status, result.text) == ("failed", "")
    assert reason in result.error
    assert len(result.error) <= 200 and "\n" not in result.error and "Traceback" not in result.error


def test_docx_that_would_inflate_past_four_times_max_bytes_is_refused() -> None:
    out = io.BytesIO(docx_bytes(paragraphs=["bomb"]))
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/zeros.bin", b"\0" * (5 * 1024 * 1024))
    data = out.getvalue()
    assert len(data) < 100_000
    result = extract(data, DOCX, max_bytes=1024 * 1024)
    assert result.status == "failed" and "expands to" in result.error
    assert extract(data, DOCX, max_bytes=2 * 1024 * 1024).text == "bomb"


# --- limits ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", ["text/plain", "application/pdf", DOCX, "text/html"])
def test_text_is_cut_at_max_chars(media_type: str) -> None:
    words = [f"word{i}" for i in range(3000)]
    data = {"text/plain": " ".join(words).encode(),
            "application/pdf": pdf_bytes([words[i:i + 40] for i in range(0, 3000, 40)]),
            DOCX: docx_bytes(paragraphs=words),
            "text/html": "".join(f"<p>{w}</p>" for w in words).encode()}[media_type]
    result = extract(data, media_type, max_chars=1000)
    assert result.status == "truncated" and result.error is None
    assert len(result.text) == 1000
    assert result.text.startswith("word0") and result.text.split()[1] == "word1"


def test_exactly_max_chars_is_not_truncated() -> None:
    assert extract(b"abcde", "text/plain", max_chars=5) == Extraction("abcde", "ok", None)


def test_the_cap_applies_while_extracting() -> None:
    # The endless extractor writes forever: it can only end because the sink stops it at max_chars.
    started = time.monotonic()
    result = extract(b"x", ENDLESS, max_chars=50_000, timeout_s=10)
    assert (result.status, len(result.text)) == ("truncated", 50_000)
    assert time.monotonic() - started < 5


def test_too_large_is_not_read_at_all() -> None:
    open_content = opener(b"x" * 100)
    result = extract_text(open_content, media_type="application/pdf", size=51 * 1024 * 1024)
    assert (result.status, result.text) == ("too_large", "")
    assert "limit" in result.error
    assert open_content.opened == 0


def test_content_longer_than_its_recorded_size_stops_at_max_bytes() -> None:
    data = pdf_bytes([["real"]]) + b"\n" * 3000
    result = extract_text(opener(data), media_type="application/pdf", size=100, max_bytes=2000)
    assert result.status == "too_large"


# --- worker processes --------------------------------------------------------------------------------------


def test_a_hanging_extractor_is_killed_at_the_time_limit_and_the_next_file_works() -> None:
    started = time.monotonic()
    result = extract(b"anything", SLOW, timeout_s=1.5)
    elapsed = time.monotonic() - started
    assert (result.status, result.text) == ("timeout", "")
    assert "1.5 s" in result.error
    assert 1.4 < elapsed < 6
    assert extract(pdf_bytes([["after the timeout"]]), "application/pdf").text == "after the timeout"


def test_a_crashing_extractor_is_a_failure_and_the_next_file_works() -> None:
    result = extract(b"anything", CRASH)
    assert result.status == "failed" and "ended unexpectedly" in result.error
    assert extract(b"<p>after the crash</p>", "text/html").text == "after the crash"


def test_parallel_callers_each_get_their_own_text() -> None:
    results: dict[int, Extraction] = {}

    def one(i: int) -> None:
        results[i] = extract(pdf_bytes([[f"document number {i}"]]), "application/pdf")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {i: r.text for i, r in results.items()} == {i: f"document number {i}" for i in range(8)}


def test_a_worker_killed_while_idle_is_replaced() -> None:
    from search.extract import _pool, warm_up

    warm_up()
    idle = list(_pool.get_pool()._idle)
    assert idle
    for worker in idle:
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.join(5)
    assert extract(b"<p>still indexed</p>", "text/html") == Extraction("still indexed", "ok", None)
