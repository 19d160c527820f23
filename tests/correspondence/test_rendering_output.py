"""What render_one and render_many produce: DOCX files python-docx opens, with tables, conditional paragraphs,
images, headers, and (for batches) one section and bookmark per letter."""

from __future__ import annotations

import io
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from docx import Document
from docx.oxml import OxmlElement
from docx.oxml.ns import qn

from correspondence.errors import RenderError
from correspondence.rendering import (
    BlockSource,
    InlineImageData,
    compile_template,
    make_context,
    render_many,
    render_one,
)
from tests.correspondence.docx_factory import make_docx, member, members, png, text_of

LOGO = png(40, 10, (0, 0, 200))
SIGNATURE = png(30, 10, (0, 0, 0))

TABLE = [["Item", "Amount"],
         ["{%tr for row in rows %}", ""],
         ["{{ row.item }}", "{{ row.amount|money('GBP') }}"],
         ["{%tr endfor %}", ""]]


def letter_template(**kwargs) -> bytes:  # noqa: ANN003
    return make_docx(["{{ image('logo', width_mm=40) }}",
                      "Dear {{ customer.salutation }} {{ customer.name }},",
                      "{%p if overdue %}",
                      "Your account is overdue.",
                      "{%p endif %}",
                      "Please pay {{ total|money('GBP') }} by {{ due|date }}."],
                     table=TABLE, split_runs=True, **kwargs,
                     after_table=["Yours sincerely,", "{{ image(sender.signature) }}", "{{ sender.name }}"])


def context(i: int = 0, **data) -> dict:  # noqa: ANN003
    base = {"overdue": i % 2 == 0, "total": "150.00", "due": "2024-04-30",
            "rows": [{"item": f"Item {n}", "amount": n * 10} for n in range(1, 4)],
            "sender": {"name": "Jo Bloggs", "signature": InlineImageData(SIGNATURE, width_mm=30)}}
    base.update(data)
    return make_context(base, customer={"name": f"Customer {i}", "salutation": "Ms", "locale": "en-GB"},
                        letter={"id": i, "reference": f"L-{i}"})


@pytest.fixture(scope="module")
def compiled():  # noqa: ANN201
    return compile_template(io.BytesIO(letter_template()), blocks={}, images={"logo": LOGO})


def test_render_one_gives_a_docx_with_the_letter(compiled) -> None:  # noqa: ANN001
    out = render_one(compiled, context(0))
    doc = Document(io.BytesIO(out))
    texts = [p.text for p in doc.paragraphs]
    assert "Dear Ms Customer 0," in texts
    assert "Your account is overdue." in texts
    assert "Please pay £150.00 by 30 April 2024." in texts
    assert texts[-1] == "Jo Bloggs"
    assert [[c.text for c in row.cells] for row in doc.tables[0].rows] == [
        ["Item", "Amount"], ["Item 1", "£10.00"], ["Item 2", "£20.00"], ["Item 3", "£30.00"]]
    assert not any("{%" in t or "{{" in t for t in texts)


def test_conditional_paragraphs_disappear_entirely(compiled) -> None:  # noqa: ANN001
    texts = [p.text for p in Document(io.BytesIO(render_one(compiled, context(1)))).paragraphs]
    assert "Your account is overdue." not in texts
    assert texts[texts.index("Dear Ms Customer 1,") + 1] == "Please pay £150.00 by 30 April 2024."


def test_an_empty_list_gives_a_table_with_only_its_header(compiled) -> None:  # noqa: ANN001
    doc = Document(io.BytesIO(render_one(compiled, context(0, rows=[]))))
    assert len(doc.tables[0].rows) == 1


def test_logo_and_signature_images_are_in_the_docx(compiled) -> None:  # noqa: ANN001
    out = render_one(compiled, context(0))
    doc = Document(io.BytesIO(out))
    blobs = {part.blob for part in doc.part.package.iter_parts() if part.partname.startswith("/word/media/")}
    assert blobs == {LOGO, SIGNATURE}
    assert len(doc.inline_shapes) == 2
    assert round(doc.inline_shapes[0].width.mm) == 40 and round(doc.inline_shapes[0].height.mm) == 10
    assert round(doc.inline_shapes[1].width.mm) == 30
    ids = re.findall(r'<wp:docPr id="(\d+)"', member(out, "word/document.xml"))
    assert len(ids) == len(set(ids)) == 2
    assert 'Extension="png"' in member(out, "[Content_Types].xml")


def test_the_same_image_placed_twice_is_stored_once_with_unique_drawing_ids() -> None:
    template = make_docx(["{% for s in signers %}{{ image(s) }}{% endfor %}", "{{ image('logo') }}{{ image('logo') }}"])
    compiled = compile_template(io.BytesIO(template), blocks={}, images={"logo": LOGO})
    out = render_one(compiled, {"signers": [SIGNATURE, SIGNATURE, InlineImageData(SIGNATURE)]})
    assert len([m for m in members(out) if m.startswith("word/media/")]) == 2
    ids = re.findall(r'<wp:docPr id="(\d+)"', member(out, "word/document.xml"))
    assert len(ids) == len(set(ids)) == 5
    assert len(Document(io.BytesIO(out)).inline_shapes) == 5


def test_pictures_already_in_the_template_are_kept() -> None:
    template = make_docx(["Hello {{ name }}"], picture=LOGO)
    out = render_one(compile_template(io.BytesIO(template), blocks={}), {"name": "Ann"})
    doc = Document(io.BytesIO(out))
    assert len(doc.inline_shapes) == 1 and doc.paragraphs[0].text == "Hello Ann"


@pytest.mark.parametrize("paragraph, data, message", [
    ("{{ image('stamp') }}", {}, "image 'stamp'"),
    ("{{ image(sig) }}", {"sig": b"not an image"}, "not a PNG, JPEG or GIF"),
    ("{{ image(sig) }}", {}, "'sig' is undefined"),
    ("{{ image(sig, width_mm=-3) }}", {"sig": SIGNATURE}, "width_mm"),
])
def test_bad_images_are_clear_errors(paragraph: str, data: dict, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        compiled = compile_template(io.BytesIO(make_docx([paragraph])), blocks={}, images={"logo": LOGO})
        render_one(compiled, data)


def test_an_image_given_with_the_template_must_be_an_image() -> None:
    with pytest.raises(RenderError, match="not a PNG"):
        compile_template(io.BytesIO(make_docx(["x"])), blocks={}, images={"logo": b"<svg>no</svg>"})


def test_headers_and_footers_are_rendered_with_the_letter() -> None:
    template = make_docx(["Body for {{ customer.name }}"], header="Ref {{ letter.reference }}",
                         footer="{{ image('logo') }} Page footer for {{ customer.name }}")
    compiled = compile_template(io.BytesIO(template), blocks={}, images={"logo": LOGO})
    doc = Document(io.BytesIO(render_one(compiled, context(7))))
    section = doc.sections[0]
    assert section.header.paragraphs[0].text == "Ref L-7"
    assert section.footer.paragraphs[0].text == " Page footer for Customer 7"
    assert len(section.footer.part.package.image_parts) == 1


def test_columns_from_a_list_keep_the_table_grid_right() -> None:
    template = make_docx(["Columns"], table=[["{%tc for c in columns %}", "{{ c }}", "{%tc endfor %}"]])
    out = render_one(compile_template(io.BytesIO(template), blocks={}), {"columns": ["Q1", "Q2", "Q3", "Q4"]})
    table = Document(io.BytesIO(out)).tables[0]
    assert len(table.columns) == 4
    assert [c.text for c in table.rows[0].cells] == ["Q1", "Q2", "Q3", "Q4"]


def test_line_breaks_in_the_data_become_line_breaks() -> None:
    compiled = compile_template(io.BytesIO(make_docx(["{{ address }}"])), blocks={})
    out = render_one(compiled, {"address": "1 High Street\nLondon\nSW1A 1AA"})
    assert "<w:br/>" in member(out, "word/document.xml")
    assert text_of(out) == "1 High Street\nLondon\nSW1A 1AA"


def test_a_compiled_template_renders_in_many_threads_at_once(compiled) -> None:  # noqa: ANN001
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(lambda i: (i, render_one(compiled, context(i))), range(40)))
    for i, out in outputs:
        assert f"Dear Ms Customer {i}," in text_of(out)


def _with_page_numbers(docx: bytes) -> bytes:
    """The DOCX with a PAGE field in its footer."""
    doc = Document(io.BytesIO(docx))
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), " PAGE ")
    doc.sections[0].footer.paragraphs[0]._p.append(field)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def test_render_many_gives_letters_with_page_numbers_a_section_each_with_a_bookmark() -> None:
    compiled = compile_template(io.BytesIO(_with_page_numbers(letter_template())), blocks={}, images={"logo": LOGO})
    batch = render_many(compiled, (context(i) for i in range(25)))
    assert [item.index for item in batch.letters] == list(range(25))
    assert [item.bookmark for item in batch.letters] == [f"postroom_letter_{i}" for i in range(25)]
    doc = Document(io.BytesIO(batch.docx))
    assert len(doc.sections) == 25
    assert all(s.start_type == 2 for s in doc.sections)  # WD_SECTION.NEW_PAGE
    xml = member(batch.docx, "word/document.xml")
    assert xml.count('<w:pgNumType w:start="1"/>') == 25
    starts = re.findall(r'<w:bookmarkStart w:id="(\d+)" w:name="(postroom_letter_\d+)"/>', xml)
    assert [name for _id, name in starts] == [f"postroom_letter_{i}" for i in range(25)]
    assert len({bid for bid, _name in starts}) == 25
    # each bookmark sits at the start of its letter: the text up to the next bookmark is that letter's
    letters = re.split(r'<w:bookmarkStart w:id="\d+" w:name="postroom_letter_\d+"/>', xml)[1:]
    for i, letter_xml in enumerate(letters):
        assert f"Dear Ms Customer {i}," in re.sub(r"<[^>]+>", "", letter_xml)
    texts = [p.text for p in doc.paragraphs]
    assert sum(t.startswith("Dear Ms") for t in texts) == 25
    assert len(doc.tables) == 25
    ids = re.findall(r'<wp:docPr id="(\d+)"', xml)
    assert len(ids) == len(set(ids)) == 50
    assert len([m for m in members(batch.docx) if m.startswith("word/media/")]) == 2


def test_render_many_separates_letters_without_page_numbers_by_page_breaks(compiled) -> None:  # noqa: ANN001
    batch = render_many(compiled, (context(i) for i in range(25)))
    doc = Document(io.BytesIO(batch.docx))
    assert len(doc.sections) == 1  # page numbers need not restart, so one section holds every letter
    xml = member(batch.docx, "word/document.xml")
    assert xml.count('<w:br w:type="page"/>') == 24
    letters = re.split(r'<w:bookmarkStart w:id="\d+" w:name="postroom_letter_\d+"/>', xml)[1:]
    assert len(letters) == 25
    for i, letter_xml in enumerate(letters):
        assert f"Dear Ms Customer {i}," in re.sub(r"<[^>]+>", "", letter_xml)
        assert letter_xml.count('<w:br w:type="page"/>') == (0 if i == 24 else 1)  # the break ends the letter


def test_render_many_streams_to_a_file(compiled, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "batch.docx"
    with path.open("wb") as f:
        batch = render_many(compiled, [context(i) for i in range(3)], out=f)
    assert batch.docx is None and len(batch.letters) == 3
    assert zipfile.is_zipfile(path)
    assert member(path.read_bytes(), "word/document.xml").count('<w:br w:type="page"/>') == 2


def test_render_many_names_the_letter_that_failed(compiled) -> None:  # noqa: ANN001
    contexts = [context(0), context(1), context(2, total="lots")]
    with pytest.raises(RenderError) as caught:
        render_many(compiled, contexts)
    assert caught.value.extra["letter"] == 2
    assert "needs a number" in caught.value.detail


def test_render_many_refuses_headers_that_differ_per_letter() -> None:
    template = make_docx(["Body"], header="Ref {{ letter.reference }}")
    compiled = compile_template(io.BytesIO(template), blocks={})
    with pytest.raises(RenderError) as caught:
        render_many(compiled, [context(0)])
    assert caught.value.extra["part"] == "word/header1.xml"
    assert "one by one" in caught.value.detail


def test_render_many_keeps_static_headers_for_every_letter() -> None:
    template = make_docx(["Dear {{ customer.name }}"], header="ACME Bank plc")
    for source, sections in ((template, 1), (_with_page_numbers(template), 3)):  # page breaks, or a section each
        batch = render_many(compile_template(io.BytesIO(source), blocks={}), [context(i) for i in range(3)])
        doc = Document(io.BytesIO(batch.docx))
        assert [s.header.paragraphs[0].text for s in doc.sections] == ["ACME Bank plc"] * sections


def test_render_many_of_nothing_is_an_error(compiled) -> None:  # noqa: ANN001
    with pytest.raises(RenderError, match="no letters"):
        render_many(compiled, [])


def test_blocks_with_pictures_and_styles_come_along() -> None:
    block = make_docx(["Signed for ACME:"], picture=SIGNATURE)
    template = make_docx(["Dear {{ name }},", "{{ block('signature') }}"])
    compiled = compile_template(io.BytesIO(template), blocks={"signature": BlockSource("signature", block)})
    for out in (render_one(compiled, {"name": "Ann"}), render_many(compiled, [{"name": "A"}, {"name": "B"}]).docx):
        doc = Document(io.BytesIO(out))
        assert "Signed for ACME:" in [p.text for p in doc.paragraphs]
        assert {p.blob for p in doc.part.package.iter_parts() if p.partname.startswith("/word/media/")} == {SIGNATURE}
