"""Composition against a real LibreOffice: one pool of 2 warm unoserver workers for the whole module.

Conversion, PDF/A-2b validated by veraPDF, XMP metadata, batch split, and the pool's supervision: restart
after N conversions, a LibreOffice killed mid-conversion, a timeout, a full queue.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pikepdf
import pytest
from pypdf import PdfReader

from correspondence.rendering import compile_template, make_context, render_many, render_one
from output.compose import (
    ConversionError,
    ConverterPool,
    PoolBusyError,
    find_verapdf,
    read_metadata,
    set_metadata,
    split_letters,
    validate_pdfa,
)
from output.compose._worker import find_soffice
from output.compose.office_profile import find_allocator
from tests.conftest import service_missing
from tests.correspondence.docx_factory import make_docx

pytestmark = pytest.mark.libreoffice

MAX_CONVERSIONS = 6
LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 20
TEMPLATE = make_docx(["Dear {{ customer.name }},", "This is letter {{ letter.reference }}.",
                      "{%p for i in range(extra) %}", "Paragraph {{ i }}: " + LONG_TEXT, "{%p endfor %}",
                      "Yours sincerely,", "Postroom"])


def _free_port_base(count: int) -> int:
    """A port with `count` free loopback ports from it upwards."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65535:
            continue
        try:
            socks = []
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range")


@pytest.fixture(scope="module")
def pool() -> Iterator[ConverterPool]:
    """One started pool of 2 workers (LibreOffice start-up is slow)."""
    if find_soffice(None) is None:
        service_missing("libreoffice", "soffice is not installed (ops/libreoffice.sh)")
    if subprocess.run(["/usr/bin/python3", "-c", "import uno"], capture_output=True).returncode != 0:
        service_missing("libreoffice", "/usr/bin/python3 cannot import uno (ops/libreoffice.sh)")
    p = ConverterPool(workers=2, max_queue=0, max_conversions=MAX_CONVERSIONS, timeout_s=60,
                      port_base=_free_port_base(4))
    p.start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def compiled():  # noqa: ANN201
    """The test letter template, compiled once."""
    return compile_template(io.BytesIO(TEMPLATE), blocks={})


def _contexts(n: int, *, long_every: int = 0) -> list[dict]:
    return [make_context({"extra": 10 if long_every and i % long_every == 0 else 0},
                         customer={"name": f"Customer {i}"}, letter={"id": i, "reference": f"L-{i:05d}"})
            for i in range(n)]


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _wait_for(predicate, timeout: float = 60.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _restarts(p: ConverterPool) -> int:
    return sum(w["restarts"] for w in p.health()["workers"])


def _all_ready(p: ConverterPool) -> bool:
    return all(w["alive"] and w["state"] == "idle" for w in p.health()["workers"])


def _verapdf_or_skip() -> None:
    if find_verapdf() is None:
        service_missing("libreoffice", "veraPDF is not installed (ops/verapdf.sh)")


def test_a_letter_converts_to_a_pdf_with_its_text(pool, compiled) -> None:  # noqa: ANN001
    pdf = pool.convert(render_one(compiled, _contexts(1)[0]))
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF-")
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1
    text = _text(pdf)
    assert "Dear Customer 0," in text and "This is letter L-00000." in text


def test_archived_letters_are_valid_pdfa_2b_with_postroom_metadata(pool, compiled, tmp_path) -> None:  # noqa: ANN001
    _verapdf_or_skip()
    pdf = pool.convert(render_one(compiled, _contexts(1)[0]), pdfa=True)
    stamped = set_metadata(pdf, letter_id="0b9e-letter-17", template="payment-reminder", template_version="4",
                           title="Payment reminder", extra={"batch": "B-7"})
    meta = read_metadata(stamped)
    assert meta["letterId"] == "0b9e-letter-17"
    assert meta["template"] == "payment-reminder" and meta["templateVersion"] == "4"
    assert meta["title"] == "Payment reminder" and meta["extra"] == "batch=B-7"
    assert meta["pdfa"] == "2B"  # pdfaid part/conformance kept
    with pikepdf.open(io.BytesIO(stamped)) as doc:
        assert str(doc.docinfo["/PostroomLetterId"]) == "0b9e-letter-17"
        assert str(doc.docinfo["/Title"]) == "Payment reminder"
    path = tmp_path / "letter.pdf"
    path.write_bytes(stamped)
    report = validate_pdfa(path)
    assert report.ok, report.errors
    assert "PDF/A-2B" in report.profile


def test_the_validator_rejects_a_plain_pdf(pool, compiled, tmp_path) -> None:  # noqa: ANN001
    _verapdf_or_skip()
    path = tmp_path / "plain.pdf"
    path.write_bytes(pool.convert(render_one(compiled, _contexts(1)[0]), pdfa=False))
    report = validate_pdfa(path)
    assert not report.ok and report.errors


def test_a_batch_splits_into_one_pdf_per_letter_with_page_counts(pool, compiled, tmp_path) -> None:  # noqa: ANN001
    batch = tmp_path / "batch.docx"
    with batch.open("wb") as out:
        rendered = render_many(compiled, _contexts(20, long_every=7), out=out)
    pdf_path = pool.convert(batch)
    assert pdf_path == batch.with_suffix(".pdf") and pdf_path.exists()
    letters = split_letters(pdf_path, count=len(rendered.letters))
    assert [letter.index for letter in letters] == list(range(20))
    with pikepdf.open(pdf_path) as whole:
        assert sum(letter.pages for letter in letters) == len(whole.pages)
    for letter in letters:
        # Ten long paragraphs fill several pages; the others fit on one.
        assert (letter.pages > 1) if letter.index % 7 == 0 else (letter.pages == 1), (letter.index, letter.pages)
        assert len(PdfReader(io.BytesIO(letter.pdf)).pages) == letter.pages
        text = _text(letter.pdf)
        assert f"Dear Customer {letter.index}," in text and f"L-{letter.index:05d}" in text
        others = [i for i in range(20) if i != letter.index]
        assert not any(f"Dear Customer {i}," in text for i in others)
    if find_verapdf() is not None:  # each split letter is still PDF/A
        one = tmp_path / "letter-7.pdf"
        one.write_bytes(letters[7].pdf)
        assert validate_pdfa(one).ok


def test_workers_run_with_the_conversion_profile_and_the_faster_allocator(pool, compiled) -> None:  # noqa: ANN001
    pool.convert(render_one(compiled, _contexts(1)[0]))
    allocator = find_allocator("auto")
    if allocator is None:
        service_missing("libreoffice", "neither tcmalloc nor jemalloc is installed (ops/libreoffice.sh)")
    for worker in pool._all:
        maps = Path(f"/proc/{worker.soffice_pid()}/maps").read_text()
        assert allocator.split(".so")[0] in maps  # preloaded into LibreOffice itself
        # LibreOffice took this profile as its own (it added its set-up entries) and kept our settings.
        registry = (worker.dir / "profile" / "user" / "registrymodifications.xcu").read_text()
        assert 'oor:name="ooSetupInstCompleted"' in registry
        assert '<prop oor:name="CollectWords" oor:op="fuse"><value>false</value>' in registry


def test_a_worker_is_restarted_after_n_conversions(pool, compiled) -> None:  # noqa: ANN001
    assert _wait_for(lambda: _all_ready(pool))
    before = _restarts(pool)
    docx = render_one(compiled, _contexts(1)[0])
    for _ in range(2 * MAX_CONVERSIONS + 1):
        pool.convert(docx, pdfa=False)
        assert all(w["conversions"] <= MAX_CONVERSIONS for w in pool.health()["workers"])
    assert _restarts(pool) >= before + 1
    assert _wait_for(lambda: _all_ready(pool))


def test_a_libreoffice_killed_mid_conversion_is_replaced_and_the_letter_retried(pool, compiled, tmp_path) -> None:  # noqa: ANN001
    assert _wait_for(lambda: _all_ready(pool))
    batch = tmp_path / "big.docx"
    with batch.open("wb") as out:
        render_many(compiled, _contexts(400), out=out)
    before = _restarts(pool)
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["pdf"] = pool.convert(batch)
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    seen: list[dict] = []

    def busy() -> bool:
        seen[:] = [w for w in pool.health()["workers"] if w["state"] == "busy" and w["soffice_pid"]]
        return bool(seen)

    assert _wait_for(busy, timeout=10)
    time.sleep(0.2)  # inside the conversion (several seconds for 400 letters)
    os.kill(seen[0]["soffice_pid"], signal.SIGKILL)
    thread.join(timeout=180)
    assert "error" not in result, result.get("error")
    letters = split_letters(result["pdf"], count=400)  # type: ignore[arg-type]
    assert len(letters) == 400 and "Dear Customer 399," in _text(letters[399].pdf)
    assert _wait_for(lambda: _restarts(pool) >= before + 1)
    assert _wait_for(lambda: _all_ready(pool))


def test_a_conversion_that_times_out_fails_and_its_worker_is_restarted(pool, compiled, tmp_path) -> None:  # noqa: ANN001
    assert _wait_for(lambda: _all_ready(pool))
    batch = tmp_path / "slow.docx"
    with batch.open("wb") as out:
        render_many(compiled, _contexts(400), out=out)
    before = _restarts(pool)
    started = time.monotonic()
    with pytest.raises(ConversionError) as caught:
        pool.convert(batch, timeout_s=0.2)
    assert time.monotonic() - started < 5
    assert caught.value.extra["retry_after"] >= 1
    assert _wait_for(lambda: _restarts(pool) >= before + 1)
    assert _wait_for(lambda: _all_ready(pool))
    assert "Dear Customer 0," in _text(pool.convert(render_one(compiled, _contexts(1)[0])))  # type: ignore[arg-type]


def test_a_full_queue_answers_busy_at_once(pool, compiled, tmp_path) -> None:  # noqa: ANN001
    assert _wait_for(lambda: _all_ready(pool))
    docs = []
    for i in range(2):
        path = tmp_path / f"busy-{i}.docx"
        with path.open("wb") as out:
            render_many(compiled, _contexts(300), out=out)
        docs.append(path)
    threads = [threading.Thread(target=pool.convert, args=(d,)) for d in docs]
    for t in threads:
        t.start()
    assert _wait_for(lambda: all(w["state"] == "busy" for w in pool.health()["workers"]), timeout=10)
    started = time.monotonic()
    with pytest.raises(PoolBusyError) as caught:
        pool.convert(b"anything")
    assert time.monotonic() - started < 0.5
    assert caught.value.extra["retry_after"] >= 1
    for t in threads:
        t.join(timeout=120)
