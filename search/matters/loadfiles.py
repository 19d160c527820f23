"""Load files of a production: the Concordance DAT (metadata per document) and the Opticon OPT (image pages).

DAT, as Concordance's defaults have it: every value wrapped in the quote character þ (U+00FE), values separated
by U+0014, a line break inside a value written as ® (U+00AE, Concordance's "newline" character, turned back into
a line break on import), each record ended by CRLF, the first record naming the fields. The file is UTF-8 with a
byte-order mark, which is how Concordance and the review platforms that read its format tell Unicode from ANSI.
The format has no escape: a þ, ® or U+0014 inside a value would break the record, so þ and ® become U+FFFD and
U+0014 a space (titles are the only free text in the fields).

OPT: one line per page, `<page Bates>,<volume>,<image path>,<Y on a document's first page>,,,<page count on the
first page>`, CRLF, ASCII. An image is one multi-page PDF per document, so every page line of a document names the
same file. Paths are relative to the package root with backslashes, as load files conventionally give them."""

from __future__ import annotations

from collections.abc import Iterable

FIELD, QUOTE, NEWLINE = "\x14", "\xfe", "\xae"
BOM = "\ufeff"
DAT_FIELDS = ("BEGBATES", "ENDBATES", "CUSTODIAN", "DOCTYPE", "DATE", "TITLE", "MD5HASH", "SHA256", "NATIVEPATH",
              "TEXTPATH")
CRLF = "\r\n"


def bates(prefix: str, number: int) -> str:
    """A Bates number: the matter's prefix and at least six digits (ABC000001)."""
    return f"{prefix}{number:06d}"


def load_path(member: str) -> str:
    """A ZIP member name as a load-file path (NATIVES/A.pdf → NATIVES\\A.pdf)."""
    return member.replace("/", "\\")


def _value(value: str) -> str:
    value = value.replace(QUOTE, "\ufffd").replace(NEWLINE, "\ufffd").replace(FIELD, " ")
    return value.replace("\r\n", NEWLINE).replace("\r", NEWLINE).replace("\n", NEWLINE)


def dat_record(values: Iterable[str]) -> bytes:
    """One DAT record (a line) in UTF-8."""
    return (FIELD.join(QUOTE + _value(v) + QUOTE for v in values) + CRLF).encode("utf-8")


def dat_header() -> bytes:
    """The byte-order mark and the record naming the fields."""
    return BOM.encode("utf-8") + dat_record(DAT_FIELDS)


def opt_lines(page_keys: list[str], volume: str, image_path: str) -> bytes:
    """The OPT lines of one document's image: one per page, the first marked as a document break with the count."""
    lines = [f"{key},{volume},{image_path},{'Y' if i == 0 else ''},,,{len(page_keys) if i == 0 else ''}"
             for i, key in enumerate(page_keys)]
    return "".join(line + CRLF for line in lines).encode("ascii")
