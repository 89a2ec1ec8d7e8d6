"""One search over services, teams, systems, runbooks and ADRs, grouped by kind, with highlighted snippets.

PostgreSQL: the generated `search_tsv` columns (see portal/migrations/0001_search_vectors.py), ranked with
ts_rank, snippets from ts_headline. The last word is matched as a prefix, so results follow typing.
SQLite: every word must appear (case-insensitive LIKE) in the title or body; snippets are cut in Python.
"""

import re
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField, FloatField, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from catalog.models import Service, System
from teams.models import Team
from techdocs.models import ADR, Runbook

PER_KIND = 8
CANDIDATES = 300
SNIPPET_CHARS = 160
_WORD = re.compile(r"\w+", re.UNICODE)
# Control characters cannot appear in our text columns' useful content, so they mark highlights safely: the
# snippet is escaped as a whole and only then are the markers turned into <mark> tags.
_START, _STOP = "\x02", "\x03"


@dataclass(frozen=True)
class Hit:
    title: str
    url: str
    snippet: SafeString
    context: str  # e.g. the owning team, or the service a runbook belongs to


@dataclass(frozen=True)
class Group:
    kind: str
    label: str
    hits: list[Hit]


@dataclass(frozen=True)
class _Kind:
    key: str
    label: str
    model: Any  # a searchable model class
    title: str
    body: str
    related: tuple[str, ...]
    like_fields: tuple[str, ...]


KINDS = (
    _Kind("services", "Services", Service, "name", "description", ("owner",), ("name", "slug", "description")),
    _Kind("teams", "Teams", Team, "name", "description", (), ("name", "slug", "description")),
    _Kind("systems", "Systems", System, "name", "description", ("owner",), ("name", "slug", "description")),
    _Kind("runbooks", "Runbooks", Runbook, "title", "body", ("service",), ("title", "body")),
    _Kind(
        "adrs",
        "Decisions (ADRs)",
        ADR,
        "title",
        "body",
        ("service", "system"),
        ("title", "body", "context", "decision"),
    ),
)


def _terms(query: str) -> list[str]:
    return _WORD.findall(query.lower())[:8]


def _highlight(text: str) -> SafeString:
    return mark_safe(escape(text).replace(_START, "<mark>").replace(_STOP, "</mark>"))  # noqa: S308 - escaped first


def _context(kind: _Kind, obj: Any) -> str:
    if kind.key in ("services", "systems"):
        return obj.owner.name
    if kind.key == "runbooks":
        return obj.service.name
    if kind.key == "adrs":
        owner = obj.service or obj.system
        return f"ADR-{obj.number:04d} · {owner.name} · {obj.get_status_display()}"
    return ""


def _postgres(kind: _Kind, terms: list[str]) -> list[Hit]:
    # Only \w characters reach the tsquery, so user input cannot change its syntax.
    tsquery = " & ".join(terms[:-1] + [f"{terms[-1]}:*"])
    table = kind.model._meta.db_table
    columns = ("body", "context", "decision") if kind.key == "adrs" else (kind.body,)
    body = " || ' ' || ".join(f"coalesce({table}.{column}, '')" for column in columns)
    document = f"left({table}.{kind.title} || ' — ' || {body}, 20000)"
    options = "StartSel=\x02, StopSel=\x03, MaxWords=28, MinWords=12, ShortWord=2, MaxFragments=1"
    queryset: QuerySet[Any] = (
        kind.model.objects.select_related(*kind.related)
        .alias(
            # Rank at most CANDIDATES matches: ranking every document that contains a common word costs tens of
            # milliseconds per kind, and a common word says little about relevance anyway.
            matches=RawSQL(
                f"{table}.id IN (SELECT id FROM {table} WHERE search_tsv @@ to_tsquery('english', %s) LIMIT %s)",
                [tsquery, CANDIDATES],
                output_field=BooleanField(),
            )
        )
        .filter(matches=True)
        .annotate(
            search_rank=RawSQL(
                f"ts_rank({table}.search_tsv, to_tsquery('english', %s))", [tsquery], output_field=FloatField()
            ),
            search_snippet=RawSQL(
                f"ts_headline('english', {document}, to_tsquery('english', %s), '{options}')",
                [tsquery],
                output_field=TextField(),
            ),
        )
        .order_by("-search_rank", "pk")
    )
    return [
        Hit(
            title=str(getattr(obj, kind.title)),
            url=obj.get_absolute_url(),
            snippet=_highlight(obj.search_snippet),
            context=_context(kind, obj),
        )
        for obj in queryset[:PER_KIND]
    ]


def _snippet(text: str, terms: list[str]) -> SafeString:
    lowered = text.lower()
    positions = [lowered.find(term) for term in terms if lowered.find(term) >= 0]
    start = max(0, min(positions) - 40) if positions else 0
    window = text[start : start + SNIPPET_CHARS]
    marked = re.sub(
        "|".join(re.escape(term) for term in terms),
        lambda m: f"{_START}{m.group()}{_STOP}",
        window,
        flags=re.IGNORECASE,
    )
    return _highlight(("…" if start else "") + marked + ("…" if start + SNIPPET_CHARS < len(text) else ""))


def _fallback(kind: _Kind, terms: list[str]) -> list[Hit]:
    queryset: QuerySet[Any] = kind.model.objects.select_related(*kind.related)
    for term in terms:
        condition = Q()
        for name in kind.like_fields:
            condition |= Q(**{f"{name}__icontains": term})
        queryset = queryset.filter(condition)
    hits = []
    for obj in queryset.order_by(kind.title)[:PER_KIND]:
        text = f"{getattr(obj, kind.title)} — {getattr(obj, kind.body) or ''}"
        hits.append(
            Hit(
                title=str(getattr(obj, kind.title)),
                url=obj.get_absolute_url(),
                snippet=_snippet(text, terms),
                context=_context(kind, obj),
            )
        )
    return hits


def search(*, query: str) -> list[Group]:
    """Up to PER_KIND hits of each kind for `query`; kinds without a hit are left out."""
    terms = _terms(query)
    if not terms:
        return []
    find = _postgres if connection.vendor == "postgresql" else _fallback
    groups = [Group(kind=kind.key, label=kind.label, hits=find(kind, terms)) for kind in KINDS]
    return [group for group in groups if group.hits]
