"""Caller lookup: which contacts and companies own a number written any way, ranked, explained.

Ranking (lower ``rank`` is better):

1. ``e164``     - a stored E.164 number equals one of the input's E.164 readings;
2. ``national`` - a stored national significant number equals one of the input's national forms
                  (catches numbers stored without a country, extensions, short numbers);
3. ``suffix``   - a stored number ends in the input's last 7 digits (an indexed range query on
                  ``phones.national_rev``); longer common endings rank first.

At equal rank contacts come before companies, then by name. A contact without a responsible
user inherits its company's. A lookup is one statement (one round trip): a UNION ALL of the
three steps, each picking at most ``max(5 * limit, 50)`` phones with an index search
(``ix_phones_e164``, ``ix_phones_national``, ``ix_phones_national_rev``) and joining their
contact, companies and responsible user on primary keys: no scans, so it stays fast on millions
of phones. Ranking and owners are worked out in Python from the rows.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import String, and_, bindparam, func, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_sync.phones import SUFFIX_DIGITS, digits_of, is_hidden, suffix_range, variants
from crm_sync.schema import companies, contacts, phones, users

logger = logging.getLogger(__name__)

__all__ = ["Explanation", "LookupResult", "Match", "lookup"]

MatchKind = Literal["contact", "company"]
MatchType = Literal["e164", "national", "suffix"]


@dataclass(frozen=True, slots=True)
class Match:
    """One contact or company that owns the number."""

    kind: MatchKind
    id: int
    name: str
    company_id: int | None  # for a company: its own id
    company_name: str | None
    responsible_user_id: int | None
    responsible_name: str | None
    tags: tuple[str, ...]
    matched_number: str  # the stored number as it was typed
    match_type: MatchType
    rank: int  # 1 e164, 2 national, 3 suffix

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "company_id": self.company_id,
            "company_name": self.company_name,
            "responsible_user_id": self.responsible_user_id,
            "responsible_name": self.responsible_name,
            "tags": list(self.tags),
            "matched_number": self.matched_number,
            "match_type": self.match_type,
            "rank": self.rank,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """How a lookup went: the forms tried, what each step found, and why nothing matched."""

    input: str
    variants_tried: list[str]
    steps: list[str]
    reason_if_none: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "input": self.input,
            "variants_tried": list(self.variants_tried),
            "steps": list(self.steps),
            "reason_if_none": self.reason_if_none,
        }


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Matches, best first, and the explanation."""

    matches: list[Match]
    explanation: Explanation
    hidden: bool = False  # the caller id was withheld
    e164: str | None = None  # the input's best E.164 reading, if any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> Match | None:
        """The top match, or None."""
        return self.matches[0] if self.matches else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "matches": [m.to_dict() for m in self.matches],
            "explanation": self.explanation.to_dict(),
            "hidden": self.hidden,
            "e164": self.e164,
        }


async def lookup(conn: AsyncConnection, number: str, region: str, limit: int = 10) -> LookupResult:
    """Find who owns ``number`` (any format) with ``region`` as the default country.

    Returns at most ``limit`` matches ranked as the module docstring says; a hidden or empty
    number returns no matches and says so in the explanation. Never raises on odd input.
    """
    raw = number.strip()[:200] if isinstance(number, str) else ""
    if limit < 1:
        limit = 1
    if is_hidden(raw):
        why = "the caller id is hidden or empty" if raw else "the number is empty"
        return LookupResult(
            matches=[],
            explanation=Explanation(
                input=raw,
                variants_tried=[],
                steps=[f"{raw!r}: {why}; nothing to look up"],
                reason_if_none=why,
            ),
            hidden=True,
        )
    v = variants(raw, region)
    steps: list[str] = []
    if v.e164:
        steps.append(
            f"read {raw!r} with default region {region} as {', '.join(v.e164)} "
            f"(national {', '.join(v.national)})"
        )
    else:
        steps.append(
            f"{raw!r} is not a valid phone number for region {region}; "
            f"trying its digits {', '.join(v.national) or '(none)'} as stored"
        )
    fetch = max(limit * 5, 50)
    base = v.national[0] if v.national else digits_of(raw)
    params: dict[str, Any] = {}
    branches: list[tuple[int, MatchType]] = []
    if v.e164:
        branches.append((1, "e164"))
        params["e164"] = list(v.e164)
    if v.national:
        branches.append((2, "national"))
        params["national"] = list(v.national)
    bounded = False
    if v.suffix:
        branches.append((3, "suffix"))
        params["low"], high = suffix_range(v.suffix)
        if high is not None:
            bounded = True
            params["high"] = high
    rows: list[Any] = []
    if branches:
        # one statement, one round trip: each step's phones with their owners
        stmt = _statement(tuple(rank for rank, _ in branches), bounded, fetch)
        rows = list((await conn.execute(stmt, params)).all())
    counts = {rank: 0 for rank, _ in branches}
    for row in rows:
        counts[int(row.rank)] += 1
    kinds: dict[int, MatchType] = dict(branches)
    labels = {1: ("exact E.164", v.e164), 2: ("national number", v.national)}
    for rank in (1, 2):
        if rank in counts:
            label, values = labels[rank]
            steps.append(f"{label} {', '.join(values)}: {_phones(counts[rank])}")
    if v.suffix:
        steps.append(
            f"numbers ending in {v.suffix} (last {SUFFIX_DIGITS} digits, "
            f"range on national_rev): {_phones(counts[3])}"
        )
    else:
        steps.append(
            f"no suffix match: {len(base)} digit(s) is fewer than the {SUFFIX_DIGITS} needed"
        )

    # phone id -> (rank, -common ending length, match type, row)
    hits: dict[int, tuple[int, int, MatchType, Any]] = {}
    for row in rows:
        rank = int(row.rank)
        common = _common_ending(row.national, base)
        old = hits.get(row.id)
        if old is None or (rank, -common) < old[:2]:
            hits[row.id] = (rank, -common, kinds[rank], row)
    matches = _owners(list(hits.values()))
    # rank, then the longer common ending, then contacts before companies, then by name
    matches.sort(
        key=lambda x: (x[1].rank, x[0], 0 if x[1].kind == "contact" else 1, x[1].name, x[1].id)
    )
    ranked = [m for _, m in matches][:limit]
    reason = None
    if not ranked:
        forms = [*v.e164, *v.national]
        reason = "no contact or company has the number " + (" or ".join(forms) or repr(raw))
        if v.suffix:
            reason += f", and no stored number ends in {v.suffix}"
        elif base:
            reason += f" ({len(base)} digits: too short for a suffix match)"
    steps.append(
        f"{len(ranked)} match(es)" + (f" of {len(matches)}" if len(matches) > limit else "")
    )
    return LookupResult(
        matches=ranked,
        explanation=Explanation(
            input=raw, variants_tried=v.flat(), steps=steps, reason_if_none=reason
        ),
        e164=v.e164[0] if v.e164 else None,
    )


def _phones(n: int) -> str:
    return "1 phone" if n == 1 else f"{n} phones"


def _common_ending(a: str, b: str) -> int:
    n = 0
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y:
            break
        n += 1
    return n


@functools.lru_cache(maxsize=64)
def _statement(ranks: tuple[int, ...], bounded: bool, fetch: int) -> Any:
    """The lookup statement for the steps in ``ranks`` (1 E.164, 2 national, 3 suffix), built
    once per shape: the values are bound parameters (``e164``, ``national``: lists; ``low`` and,
    when ``bounded``, ``high``: the ``national_rev`` range). Each step picks at most ``fetch``
    phone ids with an index search in a subquery (a LIMIT inside a compound would otherwise
    need a scan of the subquery's rows), then ``_candidates`` joins their owners."""
    parts = []
    for rank in ranks:
        cond: Any
        if rank == 1:
            cond = phones.c.e164.in_(bindparam("e164", expanding=True))
        elif rank == 2:
            cond = phones.c.national.in_(bindparam("national", expanding=True))
        else:
            cond = phones.c.national_rev >= bindparam("low", type_=String)
            if bounded:
                cond = and_(cond, phones.c.national_rev < bindparam("high", type_=String))
        ids = select(phones.c.id).where(cond).limit(fetch).correlate(None)
        parts.append(_candidates(rank, ids))
    return union_all(*parts)


_contact_company = companies.alias("contact_company")
_phone_company = companies.alias("phone_company")


def _candidates(rank: int, ids: Any) -> Any:
    """The phones whose id is in ``ids``, tagged with ``rank``, each with its owner: the contact
    (and the contact's company) or, for a company's own phone, the company, and the responsible
    user (a contact without one inherits its company's). Every join is on a primary key."""
    responsible = func.coalesce(
        contacts.c.responsible_user_id,
        _contact_company.c.responsible_user_id,
        _phone_company.c.responsible_user_id,
    )
    joined = (
        phones.outerjoin(contacts, contacts.c.id == phones.c.contact_id)
        .outerjoin(_contact_company, _contact_company.c.id == contacts.c.company_id)
        .outerjoin(
            _phone_company,
            and_(_phone_company.c.id == phones.c.company_id, phones.c.contact_id.is_(None)),
        )
        .outerjoin(users, users.c.id == responsible)
    )
    return (
        select(
            literal_column(str(int(rank))).label("rank"),
            phones.c.id,
            phones.c.contact_id,
            phones.c.company_id,
            phones.c.raw,
            phones.c.national,
            contacts.c.id.label("contact_found"),
            contacts.c.name.label("contact_name"),
            contacts.c.company_id.label("contact_company_id"),
            contacts.c.tags.label("contact_tags"),
            _contact_company.c.name.label("contact_company_name"),
            _phone_company.c.id.label("company_found"),
            _phone_company.c.name.label("company_name"),
            _phone_company.c.tags.label("company_tags"),
            responsible.label("responsible_user_id"),
            users.c.name.label("responsible_name"),
        )
        .select_from(joined)
        .where(phones.c.id.in_(ids))
    )


def _owners(hits: list[tuple[int, int, MatchType, Any]]) -> list[tuple[int, Match]]:
    """Turn phone hits into one Match per owner (its best hit), each with minus the length of
    the ending its number shares with the input (for sorting)."""
    best_contact: dict[int, tuple[int, int, MatchType, Any]] = {}
    best_company: dict[int, tuple[int, int, MatchType, Any]] = {}
    for hit in hits:
        row = hit[3]
        if row.contact_id is not None:
            target, key = best_contact, int(row.contact_id)
        elif row.company_id is not None:
            target, key = best_company, int(row.company_id)
        else:
            continue
        if key not in target or hit[:2] < target[key][:2]:
            target[key] = hit
    out: list[tuple[int, Match]] = []
    for cid, (rank, neg_common, mtype, r) in best_contact.items():
        if r.contact_found is None:
            continue
        responsible = r.responsible_user_id
        out.append(
            (
                neg_common,
                Match(
                    kind="contact",
                    id=cid,
                    name=r.contact_name,
                    company_id=r.contact_company_id,
                    company_name=r.contact_company_name,
                    responsible_user_id=responsible,
                    responsible_name=r.responsible_name if responsible is not None else None,
                    tags=tuple(r.contact_tags or ()),
                    matched_number=r.raw,
                    match_type=mtype,
                    rank=rank,
                ),
            )
        )
    for cid, (rank, neg_common, mtype, r) in best_company.items():
        if r.company_found is None:
            continue
        responsible = r.responsible_user_id
        out.append(
            (
                neg_common,
                Match(
                    kind="company",
                    id=cid,
                    name=r.company_name,
                    company_id=cid,
                    company_name=r.company_name,
                    responsible_user_id=responsible,
                    responsible_name=r.responsible_name if responsible is not None else None,
                    tags=tuple(r.company_tags or ()),
                    matched_number=r.raw,
                    match_type=mtype,
                    rank=rank,
                ),
            )
        )
    return out
