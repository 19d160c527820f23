"""Checks and normalisation of customer profile values: pure functions, no database.

Each single-value check raises InvalidInputError with `field=` naming the field as the API shows it (for example
"address.postcode"); `check_profile` checks a whole profile at once and lists every bad field in one error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import phonenumbers
from babel import Locale
from email_validator import EmailNotValidError, validate_email

from repository.errors import InvalidInputError
from repository.locales import normalise_locale

CHANNELS = ("print", "email", "sms", "portal", "none")
DEFAULT_LOCALE = "en-GB"
MAX_ADDRESS_LINES = 4
MAX_SEGMENT_BYTES = 16 * 1024
# Field names as the API shows them, for the flat keys the service and the models use.
FIELD_NAMES = {
    "address_lines": "address.lines", "city": "address.city", "region": "address.region",
    "postcode": "address.postcode", "country": "address.country",
}
ADDRESS_KEYS = ("address_lines", "city", "region", "postcode", "country")
TEXT_LIMITS = {"external_ref": 200, "name": 300, "salutation": 300, "title": 50, "city": 100, "region": 100}

# Babel lists these among territories, but no postal address is in them.
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"}
_POSTCODES: dict[str, tuple[re.Pattern[str], str]] = {
    "GB": (re.compile(r"^(GIR0AA|[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][ABD-HJLNP-UW-Z]{2})$"), "like SW1A 1AA"),
    "US": (re.compile(r"^[0-9]{5}([0-9]{4})?$"), "5 digits, or ZIP+4 like 12345-6789"),
    "DE": (re.compile(r"^[0-9]{5}$"), "5 digits"),
    "FR": (re.compile(r"^[0-9]{5}$"), "5 digits"),
    "NL": (re.compile(r"^[1-9][0-9]{3}[A-Z]{2}$"), "4 digits and 2 letters, like 1012 AB"),
}
_OTHER_POSTCODE = re.compile(r"^[A-Z0-9][A-Z0-9 -]{0,18}[A-Z0-9]$|^[A-Z0-9]$")
_CATEGORY = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")
_MOBILE_TYPES = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
_TRUE, _FALSE = {"true", "1", "yes", "y", "on"}, {"false", "0", "no", "n", "off", ""}


def field_name(key: str) -> str:
    """The API's name for a flat profile key ("postcode" -> "address.postcode")."""
    return FIELD_NAMES.get(key, key)


def _bad(field: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{field}: {message}", field=field, errors=[{"field": field, "message": message}])


def text(value: Any, *, field: str, max_length: int, required: bool = False) -> str | None:
    """Stripped text of at most max_length characters; None (or an error when required) for empty."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _bad(field, "must be text")
    value = value.strip()
    if not value:
        if required:
            raise _bad(field, "is required")
        return None
    if len(value) > max_length:
        raise _bad(field, f"must be at most {max_length} characters")
    return value


def flag(value: Any, *, field: str) -> bool:
    """A boolean, also from the words CSV files use (true/false, yes/no, 1/0; empty is false)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _bad(field, "must be true or false")


def email(value: str) -> str:
    """The address in normalised form (syntax only: no DNS lookup)."""
    if not isinstance(value, str):
        raise _bad("email", "must be text")
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise _bad("email", f"{value.strip()!r} is not a valid email address: {exc}") from exc


def mobile(value: str, *, country: str | None) -> str:
    """The mobile number in E.164 form; a number without "+" is read as a number of `country`."""
    if not isinstance(value, str):
        raise _bad("mobile", "must be text")
    raw = value.strip()
    if not raw.startswith("+") and not country:
        raise _bad("mobile", f"{raw!r} has no country code: write it as +<country code><number>, or give the "
                             "customer's address country")
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else country)
    except phonenumbers.NumberParseException as exc:
        raise _bad("mobile", f"{raw!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise _bad("mobile", f"{raw!r} is not a valid phone number")
    if number.extension:
        raise _bad("mobile", f"{raw!r} has an extension; a mobile number has none")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise _bad("mobile", f"{raw!r} is not a mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(k for k in Locale("en").territories if len(k) == 2 and k.isalpha() and k not in _NOT_COUNTRIES)


def country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code known to babel, upper case."""
    if not isinstance(value, str):
        raise _bad("address.country", "must be text")
    code = value.strip().upper()
    if code not in _countries():
        raise _bad("address.country", f"{value.strip()!r} is not an ISO 3166-1 alpha-2 country code (like GB)")
    return code


def postcode(value: str, *, country: str) -> str:
    """The postcode checked against the country's format and normalised (upper case; GB and NL with one
    space before the last part, US ZIP+4 with a hyphen)."""
    if not isinstance(value, str):
        raise _bad("address.postcode", "must be text")
    compact = re.sub(r"[\s-]+", "", value).upper() if country in _POSTCODES else " ".join(value.upper().split())
    rule = _POSTCODES.get(country)
    if rule is None:
        if not _OTHER_POSTCODE.match(compact):
            raise _bad("address.postcode", f"{value.strip()!r} is not a postcode (letters, digits, spaces and "
                                           "'-', at most 20)")
        return compact
    pattern, example = rule
    if not pattern.match(compact):
        raise _bad("address.postcode", f"{value.strip()!r} is not a valid {country} postcode ({example})")
    if country == "GB":
        return f"{compact[:-3]} {compact[-3:]}"
    if country == "NL":
        return f"{compact[:4]} {compact[4:]}"
    if country == "US" and len(compact) == 9:
        return f"{compact[:5]}-{compact[5:]}"
    return compact


def locale(value: str) -> str:
    """A BCP 47 tag babel knows, as repository.locales normalises it ("en_gb" -> "en-GB", "en_GB@euro" ->
    "en-GB"; "und" and empty text are refused)."""
    return normalise_locale(value, field="locale")


def address_lines(value: Any) -> list[str]:
    """1-4 non-empty lines of at most 100 characters each (an empty list means no address)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise _bad("address.lines", "must be a list of text lines")
    lines = [line.strip() for line in value if line.strip()]
    if len(lines) > MAX_ADDRESS_LINES:
        raise _bad("address.lines", f"at most {MAX_ADDRESS_LINES} lines, not {len(lines)}")
    too_long = [i + 1 for i, line in enumerate(lines) if len(line) > 100]
    if too_long:
        raise _bad("address.lines", f"line {too_long[0]} is longer than 100 characters")
    return lines


def channel_preferences(value: Any) -> dict[str, str]:
    """Communication category -> channel, each channel one of CHANNELS."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad("channel_preferences", "must be an object of category -> channel")
    prefs: dict[str, str] = {}
    for category, channel in value.items():
        if not isinstance(category, str) or not _CATEGORY.match(category):
            raise _bad("channel_preferences", f"category {category!r} must be lower-case letters, digits, '_' "
                                              "and '-', starting with a letter")
        if not isinstance(channel, str) or channel.strip().lower() not in CHANNELS:
            raise _bad(f"channel_preferences.{category}", f"{channel!r} is not a channel; use one of "
                                                          f"{', '.join(CHANNELS)}")
        prefs[category] = channel.strip().lower()
    return dict(sorted(prefs.items()))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def segment(value: Any) -> dict[str, Any]:
    """Free targeting attributes: a JSON object of at most 16 KiB with finite numbers and no NUL characters."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("segment", "must be a JSON object of attributes")
    try:
        encoded = json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _bad("segment", "must hold only JSON values with finite numbers") from exc
    if len(encoded.encode()) > MAX_SEGMENT_BYTES:
        raise _bad("segment", f"is larger than {MAX_SEGMENT_BYTES} bytes as JSON")
    decoded = json.loads(encoded)
    if _has_nul(decoded) or any(not k.strip() or len(k) > 100 for k in decoded):
        raise _bad("segment", "attribute names must be 1-100 characters and no value may contain NUL")
    return decoded


def empty_profile() -> dict[str, Any]:
    """The values of a customer nobody has told us anything about (besides reference and name)."""
    return {"external_ref": None, "name": None, "salutation": "", "title": "", "address_lines": [], "city": None,
            "region": None, "postcode": None, "country": None, "email": None, "mobile": None,
            "locale": DEFAULT_LOCALE, "channel_preferences": {}, "paperless": False, "segment": {}}


PROFILE_KEYS = tuple(empty_profile())


def check_profile(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalise a whole profile (every key of PROFILE_KEYS; None means "not given"), listing every
    bad field in one InvalidInputError (`errors` is [{field, message}])."""
    errors: list[dict[str, str]] = []
    out: dict[str, Any] = {}

    def run(key: str, check: Callable[[], Any]) -> None:
        try:
            out[key] = check()
        except InvalidInputError as exc:
            errors.extend(exc.extra.get("errors") or [{"field": field_name(key), "message": exc.detail}])
            out[key] = None

    unknown = sorted(set(values) - set(PROFILE_KEYS))
    if unknown:
        errors += [{"field": k, "message": "is not a customer field"} for k in unknown]
    for key in ("external_ref", "name"):
        run(key, lambda k=key: text(values.get(k), field=k, max_length=TEXT_LIMITS[k], required=True))
    for key in ("salutation", "title"):
        run(key, lambda k=key: text(values.get(k), field=k, max_length=TEXT_LIMITS[k]) or "")
    for key in ("city", "region"):
        run(key, lambda k=key: text(values.get(k), field=field_name(k), max_length=TEXT_LIMITS[k]))
    run("address_lines", lambda: address_lines(values.get("address_lines")))
    given = values.get("country")
    run("country", lambda: country(given) if given not in (None, "") else None)
    _check_address(values, out, errors, run)
    run("email", lambda: email(values["email"]) if values.get("email") not in (None, "") else None)
    run("mobile", lambda: mobile(values["mobile"], country=out.get("country"))
        if values.get("mobile") not in (None, "") else None)
    run("locale", lambda: locale(values.get("locale") or DEFAULT_LOCALE))
    run("channel_preferences", lambda: channel_preferences(values.get("channel_preferences")))
    run("paperless", lambda: flag(values.get("paperless"), field="paperless"))
    run("segment", lambda: segment(values.get("segment")))
    if not errors:
        errors += _reachability(out)
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message'].removeprefix(e['field'] + ': ')}" for e in errors)
        raise InvalidInputError(detail, field=errors[0]["field"], errors=errors)
    return out


def _check_address(values: Mapping[str, Any], out: dict[str, Any], errors: list[dict[str, str]],
                   run: Callable[[str, Callable[[], Any]], None]) -> None:
    raw_postcode = values.get("postcode")
    has_postcode = isinstance(raw_postcode, str) and raw_postcode.strip() != ""
    parts = [out.get("address_lines"), out.get("city"), out.get("region"), out.get("country"), has_postcode]
    if not any(parts):
        out["postcode"] = None
        return
    for key, present in (("address_lines", out.get("address_lines")), ("city", out.get("city")),
                         ("country", out.get("country"))):
        if not present and not any(e["field"] == field_name(key) for e in errors):
            errors.append({"field": field_name(key), "message": "is required in a postal address"})
    code = out.get("country")
    if has_postcode:
        run("postcode", lambda: postcode(raw_postcode, country=code or ""))
    elif code in _POSTCODES:
        errors.append({"field": "address.postcode", "message": f"is required in a {code} address"})
        out["postcode"] = None
    else:
        out["postcode"] = None


def _reachability(profile: Mapping[str, Any]) -> list[dict[str, str]]:
    """Channel preferences the customer's contact details cannot serve."""
    needs = {"email": ("email", "an email address"), "sms": ("mobile", "a mobile number"),
             "print": ("address_lines", "a postal address")}
    errors = []
    for category, channel in profile["channel_preferences"].items():
        if channel in needs and not profile[needs[channel][0]]:
            errors.append({"field": f"channel_preferences.{category}",
                           "message": f"{channel} needs {needs[channel][1]}, and the customer has none"})
    return errors
