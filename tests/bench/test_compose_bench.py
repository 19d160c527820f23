"""DOCX -> PDF throughput: the batch fast path (render_many of 1,000 one-page letters, one conversion, split with
pikepdf) against one conversion per letter (render_one + convert, on a sample), on one warm LibreOffice.

Issue 4 measured 154 letters/s for the batch path and 10/s per letter on one LibreOffice; the whole issue's
end-to-end target (>= 250 letters/s for 10,000 letters) is for later, with every stage in place.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest

from correspondence.rendering import compile_template, render_many, render_one
from output.compose import ConverterPool, split_letters
from tests.bench.test_render_bench import LOGO, OURS, _context
from tests.output.test_compose_pool import _free_port_base

N_BATCH = 1000
N_SAMPLE = 50


@pytest.fixture(scope="module")
def pool() -> Iterator[ConverterPool]:
    """One warm worker, so both paths are measured on the same single LibreOffice."""
    p = ConverterPool(workers=1, max_queue=4, max_conversions=10_000, timeout_s=600, port_base=_free_port_base(2))
    try:
        p.start()
        p.convert(render_one(compile_template(io.BytesIO(OURS), blocks={}, images={"logo": LOGO}), _context(0)))
        yield p
    finally:
        p.stop()


def test_batch_conversion_and_split_against_one_conversion_per_letter(pool, tmp_path) -> None:  # noqa: ANN001
    compiled = compile_template(io.BytesIO(OURS), blocks={}, images={"logo": LOGO})

    start = time.perf_counter()
    for i in range(N_SAMPLE):
        pool.convert(render_one(compiled, _context(i)))
    single_rate = N_SAMPLE / (time.perf_counter() - start)

    start = time.perf_counter()
    batch = tmp_path / "batch.docx"
    with batch.open("wb") as out:
        rendered = render_many(compiled, (_context(i) for i in range(N_BATCH)), out=out)
    rendered_at = time.perf_counter()
    pdf = pool.convert(batch)
    converted_at = time.perf_counter()
    letters = split_letters(pdf, count=len(rendered.letters))
    end = time.perf_counter()
    batch_rate = N_BATCH / (end - start)

    assert len(letters) == N_BATCH and all(letter.pages == 1 for letter in letters)
    print(f"\nbatch path: {batch_rate:.0f} letters/s ({N_BATCH} letters in {end - start:.2f} s: render "
          f"{rendered_at - start:.2f} s, convert {converted_at - rendered_at:.2f} s, split {end - converted_at:.2f} s)"
          f"; one conversion per letter ({N_SAMPLE} sampled): {single_rate:.1f}/s; "
          f"ratio {batch_rate / single_rate:.1f}")
    assert batch_rate > single_rate
