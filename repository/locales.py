"""The one locale normaliser of Postroom: customers' locales, template variants and letter rendering all use it.

A locale is kept as language[-Script][-TERRITORY] ("en-GB", "zh-Hant-TW"), the form template variants are
registered and looked up in. POSIX extras are dropped (the encoding in "de_DE.UTF-8", the modifier in
"en_GB@euro"), and so are variants; "und" (undetermined), "root" and empty text are refused rather than turned
into some default, because a caller that does not know the language must say so by leaving the locale out.
"""

from __future__ import annotations

import re
from typing import Any

from babel import Locale, UnknownLocaleError

from repository.errors import InvalidInputError

# Not a language: BCP 47's "undetermined", and CLDR's root locale.
_NO_LANGUAGE = {"und", "root"}
# A POSIX locale name's encoding (".UTF-8") and modifier ("@euro") follow the tag.
_POSIX_EXTRAS = re.compile(r"[.@]")
MAX_INPUT = 100


def _refused(field: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{field}: {message}", field=field, errors=[{"field": field, "message": message}])


def normalise_locale(value: Any, *, field: str = "locale") -> str:
    """A BCP 47 tag babel knows, as language[-Script][-TERRITORY]: "en_gb" -> "en-GB", "en_GB@euro" -> "en-GB",
    "de_DE.UTF-8" -> "de-DE". InvalidInputError (with `field` and an `errors` list) for anything else, including
    empty text and "und"."""
    if not isinstance(value, str):
        raise _refused(field, "must be text")
    raw = value.strip()
    example = "(like en-GB or de-DE)"
    if len(raw) > MAX_INPUT:
        raise _refused(field, f"is longer than {MAX_INPUT} characters; give a language tag {example}")
    tag = _POSIX_EXTRAS.split(raw, maxsplit=1)[0].replace("_", "-")
    if not raw:
        raise _refused(field, f"is empty; give a language tag {example}")
    if not tag:
        raise _refused(field, f"{raw!r} is not a language tag {example}")
    if tag.split("-")[0].lower() in _NO_LANGUAGE:
        raise _refused(field, f"{raw!r} names no language; give a language tag {example}")
    try:
        parsed = Locale.parse(tag, sep="-")
    except (ValueError, TypeError, UnknownLocaleError) as exc:
        raise _refused(field, f"{raw!r} is not a known language tag {example}") from exc
    if parsed.language in _NO_LANGUAGE:
        raise _refused(field, f"{raw!r} names no language; give a language tag {example}")
    return "-".join(part for part in (parsed.language, parsed.script, parsed.territory) if part)
