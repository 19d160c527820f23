"""Composition without LibreOffice: splitting by letter destinations, metadata, and how busy converters answer
over HTTP (503 with Retry-After)."""

from __future__ import annotations

import io

import pikepdf
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import api.app  # noqa: F401  (registers the output errors' statuses)
from api.errors import install_error_handlers, status_for
from output.compose import (
    ComposeError,
    ConversionError,
    ConverterPool,
    PoolBusyError,
    ServiceUnavailableError,
    read_metadata,
    set_metadata,
    split_letters,
)


def _batch(pages_per_letter: list[int], *, spelling: str = "5F", skip: int | None = None) -> bytes:
    """A batch PDF like LibreOffice's: one destination per letter at its first page."""
    doc = pikepdf.new()
    dests = pikepdf.Dictionary()
    for letter, pages in enumerate(pages_per_letter):
        first = len(doc.pages)
        for _ in range(pages):
            doc.add_blank_page()
        if letter != skip:
            name = f"/postroom{spelling}letter{spelling}{letter}"
            dests[name] = pikepdf.Array([doc.pages[first].obj, pikepdf.Name.XYZ, 0, 0, 0])
    doc.Root.Dests = dests
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


@pytest.mark.parametrize("spelling", ["5F", "_", "#5F"])
def test_a_batch_splits_at_each_letters_destination(spelling: str) -> None:
    letters = split_letters(_batch([1, 3, 1, 2], spelling=spelling), count=4)
    assert [(letter.index, letter.pages) for letter in letters] == [(0, 1), (1, 3), (2, 1), (3, 2)]
    for letter in letters:
        with pikepdf.open(io.BytesIO(letter.pdf)) as part:
            assert len(part.pages) == letter.pages


def test_a_missing_letter_start_is_an_error_naming_the_letter() -> None:
    with pytest.raises(ComposeError) as caught:
        split_letters(_batch([1, 1, 1], skip=1), count=3)
    assert caught.value.extra["letter"] == 1
    with pytest.raises(ComposeError):
        split_letters(_batch([1, 1]), count=3)


def test_split_and_metadata_refuse_what_is_not_a_pdf() -> None:
    with pytest.raises(ComposeError):
        split_letters(b"not a pdf", count=1)
    with pytest.raises(ComposeError):
        set_metadata(b"not a pdf", letter_id="1", template="t", template_version="1", title="x")


def test_metadata_of_a_plain_pdf_is_written_to_xmp_and_info() -> None:
    doc = pikepdf.new()
    doc.add_blank_page()
    buf = io.BytesIO()
    doc.save(buf)
    stamped = set_metadata(buf.getvalue(), letter_id="L-9", template="welcome", template_version="2",
                           title="Welcome")
    meta = read_metadata(stamped)
    assert (meta["letterId"], meta["template"], meta["templateVersion"], meta["title"]) == \
        ("L-9", "welcome", "2", "Welcome")
    with pikepdf.open(io.BytesIO(stamped)) as out:
        assert str(out.docinfo["/PostroomTemplateVersion"]) == "2"


def test_busy_and_missing_converters_answer_503_with_retry_after() -> None:
    assert status_for(PoolBusyError("busy", retry_after=3)) == 503
    assert status_for(ConversionError("failed", retry_after=3)) == 503
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/convert")
    def convert() -> None:
        raise PoolBusyError("all converters are busy; retry shortly", retry_after=7)

    response = TestClient(app).get("/convert")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.json()["retry_after"] == 7


def test_a_pool_without_libreoffice_says_so_as_unavailable() -> None:
    pool = ConverterPool(workers=1, max_queue=0, max_conversions=1, timeout_s=1, port_base=40000,
                         soffice="/nonexistent/soffice")
    with pytest.raises(ServiceUnavailableError) as caught:
        pool.convert(b"x")
    assert "LibreOffice" in caught.value.detail
