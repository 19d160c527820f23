"""Customer value checks: email, mobile, postcode, country, locale, preferences, and whole profiles."""

from __future__ import annotations

import pytest

from repository import customer_validation as v
from repository.errors import InvalidInputError


def _fails(call, field: str) -> InvalidInputError:  # noqa: ANN001
    with pytest.raises(InvalidInputError) as caught:
        call()
    assert caught.value.extra["field"] == field
    assert field in caught.value.detail
    return caught.value


def profile(**values) -> dict:  # noqa: ANN003
    return {**v.empty_profile(), "external_ref": "C-1", "name": "Ada Lovelace", **values}


GB_ADDRESS = {"address_lines": ["10 Downing Street"], "city": "London", "postcode": "sw1a2aa", "country": "gb"}


@pytest.mark.parametrize(("raw", "normalised"), [
    ("Ada@Example.COM", "Ada@example.com"),
    ("  grace@navy.mil ", "grace@navy.mil"),
])
def test_email_is_normalised(raw, normalised) -> None:
    assert v.email(raw) == normalised


@pytest.mark.parametrize("raw", ["ada", "ada@", "@example.com", "ada@example", "ada@@example.com", "a b@example.com"])
def test_bad_email_names_the_field(raw) -> None:
    _fails(lambda: v.email(raw), "email")


@pytest.mark.parametrize(("raw", "country", "e164"), [
    ("+44 7911 123456", None, "+447911123456"),
    ("07911 123456", "GB", "+447911123456"),
    ("0612345678", "NL", "+31612345678"),
    ("(202) 555-0123", "US", "+12025550123"),
    ("+49 151 23456789", "FR", "+4915123456789"),  # the + wins over the country
])
def test_mobile_becomes_e164(raw, country, e164) -> None:
    assert v.mobile(raw, country=country) == e164


@pytest.mark.parametrize(("raw", "country", "why"), [
    ("07911 123456", None, "country code"),
    ("not a number", "GB", "not a phone number"),
    ("+44 12", None, "not a valid"),
    ("+44 20 7946 0000", None, "not a mobile"),  # a London landline
    ("+44 7911 123456 ext. 12", None, "extension"),
])
def test_bad_mobile_names_the_field_and_says_why(raw, country, why) -> None:
    error = _fails(lambda: v.mobile(raw, country=country), "mobile")
    assert why in error.detail


@pytest.mark.parametrize(("country", "raw", "normalised"), [
    ("GB", "sw1a1aa", "SW1A 1AA"),
    ("GB", " EC1A  1BB ", "EC1A 1BB"),
    ("GB", "M1 1AE", "M1 1AE"),
    ("US", "90210", "90210"),
    ("US", "902101234", "90210-1234"),
    ("US", "90210-1234", "90210-1234"),
    ("DE", "10115", "10115"),
    ("FR", "75008", "75008"),
    ("NL", "1012ab", "1012 AB"),
    ("NL", "1012 AB", "1012 AB"),
    ("IE", "d02 x285", "D02 X285"),  # no rule for the country: tidied, not judged
])
def test_postcode_is_normalised_per_country(country, raw, normalised) -> None:
    assert v.postcode(raw, country=country) == normalised


@pytest.mark.parametrize(("country", "raw"), [
    ("GB", "SW1A"), ("GB", "12345"), ("US", "9021"), ("US", "ABCDE"), ("DE", "1011"), ("DE", "101155"),
    ("FR", "7500A"), ("NL", "0123 AB"), ("NL", "1234"), ("IE", "#!"),
])
def test_bad_postcode_names_the_field_and_the_country(country, raw) -> None:
    error = _fails(lambda: v.postcode(raw, country=country), "address.postcode")
    if country != "IE":
        assert country in error.detail


def test_country_is_an_upper_case_alpha_2_code_babel_knows() -> None:
    assert v.country(" gb ") == "GB"
    assert v.country("nl") == "NL"
    for bad in ("UK", "GBR", "EU", "ZZ", "1", ""):
        _fails(lambda b=bad: v.country(b), "address.country")


def test_locale_is_a_canonical_bcp47_tag() -> None:
    assert v.locale("en-GB") == "en-GB"
    assert v.locale("en_gb") == "en-GB"
    assert v.locale("zh-Hant-TW") == "zh-Hant-TW"
    assert v.locale("de") == "de"
    for bad in ("xx-YY", "english", ""):
        _fails(lambda b=bad: v.locale(b), "locale")


@pytest.mark.parametrize(("raw", "normalised"), [
    ("en_GB@euro", "en-GB"),
    ("de_DE.UTF-8", "de-DE"),
    ("en_GB.UTF-8@euro", "en-GB"),
    ("EN-gb", "en-GB"),
    ("zh-TW", "zh-Hant-TW"),
    ("en-US-POSIX", "en-US"),
])
def test_locale_modifiers_encodings_and_variants_are_dropped(raw, normalised) -> None:
    assert v.locale(raw) == normalised


@pytest.mark.parametrize("bad", ["und", "UND", "und-GB", "und_Latn", "root", "", "  ", "@euro", ".UTF-8", "C",
                                 "x" * 200, None, 5])
def test_locale_without_a_language_is_refused(bad) -> None:
    error = _fails(lambda: v.locale(bad), "locale")
    assert [e["field"] for e in error.extra["errors"]] == ["locale"]


def test_the_template_normaliser_is_the_same_one() -> None:
    """correspondence's normalise_locale (template variants, letter lookup) answers exactly as the customer one."""
    from correspondence.service.templates import normalise_locale

    for tag in ("en_GB@euro", "de_DE.UTF-8", "en_gb", "zh-TW", "sr_Latn_RS", "ca_ES_VALENCIA"):
        assert normalise_locale(tag) == v.locale(tag)
    for bad in ("und", "", "xx-YY", None):
        error = _fails(lambda b=bad: normalise_locale(b), "locale")
        assert isinstance(error, InvalidInputError)


def test_a_profile_with_an_undetermined_locale_is_refused_and_an_absent_one_is_en_gb() -> None:
    assert v.check_profile(profile(locale=None))["locale"] == "en-GB"
    assert v.check_profile(profile(locale="en_GB@euro"))["locale"] == "en-GB"
    error = _fails(lambda: v.check_profile(profile(locale="und")), "locale")
    assert [e["field"] for e in error.extra["errors"]] == ["locale"]


def test_channel_preferences_take_known_channels_only() -> None:
    assert v.channel_preferences({"statements": "Email", "marketing": "none"}) == \
        {"marketing": "none", "statements": "email"}
    _fails(lambda: v.channel_preferences({"statements": "pigeon"}), "channel_preferences.statements")
    _fails(lambda: v.channel_preferences({"Bad Category": "email"}), "channel_preferences")
    _fails(lambda: v.channel_preferences(["email"]), "channel_preferences")


def test_segment_is_a_bounded_json_object() -> None:
    assert v.segment({"tier": "gold", "score": 3}) == {"score": 3, "tier": "gold"}
    _fails(lambda: v.segment(["gold"]), "segment")
    _fails(lambda: v.segment({"score": float("nan")}), "segment")
    _fails(lambda: v.segment({"blob": "x" * (v.MAX_SEGMENT_BYTES + 1)}), "segment")
    _fails(lambda: v.segment({"k": "a\x00b"}), "segment")


def test_address_lines_are_one_to_four_non_empty_lines() -> None:
    assert v.address_lines([" 1 High St ", "", "Flat 2"]) == ["1 High St", "Flat 2"]
    _fails(lambda: v.address_lines(["a", "b", "c", "d", "e"]), "address.lines")
    _fails(lambda: v.address_lines("1 High St"), "address.lines")
    _fails(lambda: v.address_lines(["x" * 101]), "address.lines")


def test_flag_reads_csv_words() -> None:
    assert v.flag("Yes", field="paperless") is True
    assert v.flag("0", field="paperless") is False
    assert v.flag("", field="paperless") is False
    _fails(lambda: v.flag("maybe", field="paperless"), "paperless")


def test_profile_with_defaults_is_valid() -> None:
    out = v.check_profile(profile())
    assert out["locale"] == "en-GB"
    assert out["channel_preferences"] == {} and out["segment"] == {} and out["paperless"] is False
    assert out["address_lines"] == [] and out["postcode"] is None


def test_profile_normalises_a_full_address_and_contacts() -> None:
    out = v.check_profile(profile(**GB_ADDRESS, email="Ada@Example.com", mobile="07911 123456",
                                  channel_preferences={"statements": "email", "letters": "print"}))
    assert (out["postcode"], out["country"], out["mobile"]) == ("SW1A 2AA", "GB", "+447911123456")
    assert out["email"] == "Ada@example.com"


def test_profile_is_idempotent() -> None:
    once = v.check_profile(profile(**GB_ADDRESS, email="Ada@Example.com", mobile="07911 123456", locale="en_gb"))
    assert v.check_profile(once) == once


def test_profile_lists_every_bad_field_in_one_error() -> None:
    error = _fails(lambda: v.check_profile(profile(
        address_lines=["1 Rue de Rivoli"], city="Paris", postcode="7500", country="FR",
        email="nope", mobile="12", locale="xx-YY")), "address.postcode")
    fields = [e["field"] for e in error.extra["errors"]]
    assert fields == ["address.postcode", "email", "mobile", "locale"]
    for field in fields:
        assert field in error.detail


def test_an_address_needs_lines_city_country_and_the_countrys_postcode() -> None:
    error = _fails(lambda: v.check_profile(profile(city="London")), "address.lines")
    assert [e["field"] for e in error.extra["errors"]] == ["address.lines", "address.country"]
    error = _fails(lambda: v.check_profile(profile(**{**GB_ADDRESS, "postcode": None})), "address.postcode")
    assert "GB" in error.detail
    # A country without a postcode rule does not need one.
    v.check_profile(profile(address_lines=["Main St 1"], city="Valletta", country="MT"))


def test_mobile_without_plus_is_read_in_the_address_country() -> None:
    us = {"address_lines": ["1600 Pennsylvania Ave NW"], "city": "Washington", "region": "DC",
          "postcode": "20500", "country": "US"}
    assert v.check_profile(profile(**us, mobile="202 555 0123"))["mobile"] == "+12025550123"
    _fails(lambda: v.check_profile(profile(mobile="07911 123456")), "mobile")


def test_preferred_channels_need_the_contact_details_they_use() -> None:
    error = _fails(lambda: v.check_profile(profile(channel_preferences={
        "statements": "email", "alerts": "sms", "letters": "print", "marketing": "none"})),
        "channel_preferences.alerts")
    assert sorted(e["field"] for e in error.extra["errors"]) == [
        "channel_preferences.alerts", "channel_preferences.letters", "channel_preferences.statements"]


def test_unknown_fields_and_missing_name_are_reported() -> None:
    error = _fails(lambda: v.check_profile({**profile(name="  "), "emial": "a@b.c"}), "emial")
    assert [e["field"] for e in error.extra["errors"]] == ["emial", "name"]
