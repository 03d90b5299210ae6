"""Phone normalisation and lookup variants (pure, no database)."""

from __future__ import annotations

import pytest

from crm_sync.phones import (
    NormalizedPhone,
    digits_of,
    is_hidden,
    lookup_variants,
    normalize,
    suffix_range,
    variants,
)

MOBILE = "+79161234567"


@pytest.mark.parametrize(
    "raw",
    [
        "+7 916 123-45-67",
        "8 (916) 1234567",
        "89161234567",
        "9161234567",
        "79161234567",
        "+7(916)123 45 67",
        "8-916-123-45-67",
        "007 916 123 45 67",
        "+79161234567",
    ],
)
def test_russian_mobile_written_any_way_normalizes_to_one_number(raw: str) -> None:
    phone = normalize(raw, "RU")
    assert phone == NormalizedPhone(
        raw=raw.strip(), e164=MOBILE, national="9161234567", national_rev="7654321619"
    )


@pytest.mark.parametrize(
    ("raw", "e164", "national"),
    [
        ("+49 30 1234567", "+49301234567", "301234567"),
        ("0049 30 1234567", "+49301234567", "301234567"),
        ("004930 1234567", "+49301234567", "301234567"),
        ("81049301234567", "+49301234567", "301234567"),
        ("+1 (202) 555-0143", "+12025550143", "2025550143"),
        ("+44 20 7946 0958", "+442079460958", "2079460958"),
    ],
)
def test_foreign_numbers(raw: str, e164: str, national: str) -> None:
    phone = normalize(raw, "RU")
    assert (phone.e164, phone.national) == (e164, national)


def test_foreign_default_region() -> None:
    assert normalize("030 1234567", "DE").e164 == "+49301234567"
    assert normalize("(202) 555-0143", "US").e164 == "+12025550143"


@pytest.mark.parametrize(("raw", "digits"), [("101", "101"), ("*97", "97"), ("5555", "5555")])
def test_extensions_and_short_numbers_keep_their_digits(raw: str, digits: str) -> None:
    phone = normalize(raw, "RU")
    assert phone.e164 is None
    assert phone.national == digits
    assert phone.national_rev == digits[::-1]


def test_extension_suffix_is_not_part_of_the_number() -> None:
    assert normalize("+7 495 123-45-67 доб. 123", "RU").e164 == "+74951234567"
    assert normalize("+7 495 123-45-67 ext 12", "RU").national == "4951234567"


@pytest.mark.parametrize(
    "raw", ["", "   ", "anonymous", "Anonymous", "<unknown>", "unknown", "Restricted", '"private"']
)
def test_hidden_caller_ids(raw: str) -> None:
    assert is_hidden(raw)
    assert lookup_variants(raw, "RU") == []


def test_not_hidden() -> None:
    assert not is_hidden("101")
    assert not is_hidden("+7 916 123-45-67")


def test_garbage_never_raises() -> None:
    for raw in ["abc", "+", "++++", "9" * 60, "\x00\x01", "+7 (((", "０１２３４５６７８９"]:
        phone = normalize(raw, "RU")
        assert len(phone.national) <= 20
    assert digits_of("０１２") == "012"


def test_variants_of_a_mobile_number() -> None:
    v = variants("8 (916) 123-45-67", "RU")
    assert v.e164 == (MOBILE,)
    assert v.national == ("9161234567",)
    assert v.suffix == "1234567"
    assert lookup_variants("8 (916) 123-45-67", "RU") == [MOBILE, "9161234567", "*1234567"]


def test_variants_of_an_extension_have_no_suffix() -> None:
    v = variants("101", "RU")
    assert v.e164 == ()
    assert v.national == ("101",)
    assert v.suffix is None


def test_variants_of_a_foreign_number_with_00() -> None:
    v = variants("0049301234567", "RU")
    assert "+49301234567" in v.e164
    assert "301234567" in v.national
    assert v.suffix == "1234567"


def test_suffix_range_bounds_every_number_with_that_ending() -> None:
    low, high = suffix_range("1234567")
    assert (low, high) == ("7654321", "7654322")
    for stored in ["9161234567", "4951234567", "1234567"]:
        assert low <= stored[::-1] < high
    for other in ["9161234568", "1234566", "234567"]:
        assert not low <= other[::-1] < high
    assert suffix_range("9999999") == ("9999999", None)
    assert suffix_range("1999999") == ("9999991", "9999992")
    assert suffix_range("9999990") == ("0999999", "1")
