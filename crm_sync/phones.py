"""Phone numbers: normalisation for storage and the variants a caller lookup tries (pure).

Every stored number keeps what was typed (``raw``), its E.164 form when the number is a real
one (``+79161234567``), its national significant number (``9161234567``; for extensions and
other short numbers simply the digits) and that national number reversed, so that "numbers
ending in 1234567" is an indexed range query on ``national_rev`` instead of a scan.

Regional habits handled: a national trunk prefix (``8 916 ...`` in Russia) through
``phonenumbers``; the international prefix written as ``00`` (``0049 30 ...``) or as ``810``
(Russia) in front of a country code; a country code typed without ``+`` (``79161234567``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult

__all__ = [
    "HIDDEN_MARKERS",
    "LookupVariants",
    "MAX_DIGITS",
    "NormalizedPhone",
    "SUFFIX_DIGITS",
    "digits_of",
    "is_hidden",
    "lookup_variants",
    "normalize",
    "suffix_range",
    "variants",
]

#: How many trailing digits a suffix match compares (and the fewest a number needs for one).
SUFFIX_DIGITS = 7
#: The longest digit string we treat as a phone number.
MAX_DIGITS = 20

#: Caller ids PBXs send when the number is withheld (compared case-insensitively).
HIDDEN_MARKERS = frozenset(
    {
        "",
        "anonymous",
        "<unknown>",
        "unknown",
        "unavailable",
        "restricted",
        "private",
        "withheld",
        "hidden",
        "<anonymous>",
        "anonymous@anonymous.invalid",
    }
)

_NON_DIGITS = re.compile(r"\D+")
_EXTENSION = re.compile(r"\s*(?:ext\.?|x|доб\.?|#)\s*\d+\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class NormalizedPhone:
    """A number as stored: what was typed, E.164 (None if not a real number) and national."""

    raw: str
    e164: str | None
    national: str
    national_rev: str


@dataclass(frozen=True, slots=True)
class LookupVariants:
    """The forms a lookup tries for one input, in the order they rank."""

    e164: tuple[str, ...]
    national: tuple[str, ...]
    suffix: str | None  # the last SUFFIX_DIGITS digits, or None for short numbers

    def flat(self) -> list[str]:
        """Every form as text; the suffix is written ``*1234567``."""
        out = [*self.e164, *self.national]
        if self.suffix:
            out.append("*" + self.suffix)
        return out


def is_hidden(raw: str | None) -> bool:
    """True when the caller id is withheld: empty, ``anonymous``, ``<unknown>``, no digits..."""
    if raw is None:
        return True
    text = raw.strip().strip('"').strip().lower()
    if text in HIDDEN_MARKERS:
        return True
    return not any(ch.isdigit() for ch in text)


def digits_of(raw: str) -> str:
    """Only the ASCII digits of ``raw`` (``+7 (916) 123-45-67`` -> ``79161234567``)."""
    return _NON_DIGITS.sub("", raw.translate(_UNICODE_DIGITS))


# Full-width and other Unicode decimal digits count as digits.
_UNICODE_DIGITS = {
    ord(ch): str(i)
    for i, chars in enumerate(
        ("０٠۰०", "１١۱१", "２٢۲२", "３٣۳३", "４٤۴४", "５٥۵५", "６٦۶६", "７٧۷७", "８٨۸८", "９٩۹९")
    )  # noqa: E501
    for ch in chars
}


def _strictly_possible(num: PhoneNumber) -> bool:
    # Possible (right length for the country), not necessarily assigned: cheap, and lenient
    # enough for new number ranges; local-only lengths are refused (they lack an area code).
    reason = phonenumbers.is_possible_number_with_reason(num)
    return bool(reason == ValidationResult.IS_POSSIBLE)


def _parse(text: str, region: str | None) -> PhoneNumber | None:
    try:
        num = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    return num if _strictly_possible(num) else None


def _e164_candidates(raw: str, region: str, first_only: bool = False) -> list[PhoneNumber]:
    """Readings of ``raw`` as a real number, most plausible first (only the first if asked)."""
    text = _EXTENSION.sub("", raw.strip())
    digits = digits_of(text)
    if len(digits) < 5 or len(digits) > MAX_DIGITS:
        return []
    found: list[PhoneNumber] = []

    def add(num: PhoneNumber | None) -> None:
        if num is not None and all(
            (n.country_code, n.national_number) != (num.country_code, num.national_number)
            for n in found
        ):
            found.append(num)

    if text.lstrip().startswith("+"):
        add(_parse("+" + digits, None))
        return found
    attempts: list[tuple[str, str | None]] = []
    if digits.startswith("00"):
        attempts.append(("+" + digits[2:], None))
    if region == "RU" and digits.startswith("810") and len(digits) > 11:
        attempts.append(("+" + digits[3:], None))
    attempts.append((digits, region))
    if len(digits) >= 11:
        attempts.append(("+" + digits, None))
    for text_, region_ in attempts:
        add(_parse(text_, region_))
        if first_only and found:
            break
    return found


def normalize(raw: str, region: str) -> NormalizedPhone:
    """Normalise ``raw`` for storage with ``region`` (ISO code like ``RU``) as the default.

    A number that is not a real phone number (an extension ``101``, a service code, garbage
    digits) gets ``e164=None`` and its digits as ``national``; one without any digit gets
    ``national=""``. Never raises.
    """
    raw = raw.strip()
    candidates = _e164_candidates(raw, region, first_only=True)
    if candidates:
        num = candidates[0]
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        national = phonenumbers.national_significant_number(num)
    else:
        e164 = None
        national = digits_of(_EXTENSION.sub("", raw))[:MAX_DIGITS] or digits_of(raw)[:MAX_DIGITS]
    return NormalizedPhone(raw=raw, e164=e164, national=national, national_rev=national[::-1])


def variants(raw: str, region: str) -> LookupVariants:
    """The E.164 forms, national numbers and suffix a lookup of ``raw`` tries."""
    if is_hidden(raw):
        return LookupVariants(e164=(), national=(), suffix=None)
    candidates = _e164_candidates(raw, region)
    e164s: list[str] = []
    nationals: list[str] = []
    for num in candidates:
        e164s.append(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164))
        nsn = phonenumbers.national_significant_number(num)
        if nsn not in nationals:
            nationals.append(nsn)
    digits = digits_of(_EXTENSION.sub("", raw.strip()))[:MAX_DIGITS]
    # The typed digits themselves: an extension, or a number stored without its trunk prefix.
    if digits and not candidates and digits not in nationals:
        nationals.append(digits)
    base = nationals[0] if nationals else digits
    suffix = base[-SUFFIX_DIGITS:] if len(base) >= SUFFIX_DIGITS else None
    return LookupVariants(e164=tuple(e164s), national=tuple(nationals), suffix=suffix)


def lookup_variants(raw: str, region: str) -> list[str]:
    """Every form a lookup of ``raw`` tries, as text (see :func:`variants`)."""
    return variants(raw, region).flat()


def suffix_range(suffix: str) -> tuple[str, str | None]:
    """The ``national_rev`` range ``[low, high)`` holding every number ending in ``suffix``.

    ``high`` is None when no upper bound is needed (``suffix`` reversed is all nines).
    Only digits are compared, so the bounds order the same under any collation.
    """
    low = suffix[::-1]
    stem = low.rstrip("9")
    if not stem:
        return low, None
    high = stem[:-1] + str(int(stem[-1]) + 1)
    return low, high
