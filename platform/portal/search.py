"""One search over services, teams, people, systems, runbooks and ADRs, grouped by kind, with highlighted snippets.

PostgreSQL: the generated `search_tsv` columns (see portal/migrations/0001_search_vectors.py), ranked with
ts_rank, snippets from ts_headline. The last word is matched as a prefix, so results follow typing.
SQLite: every word must appear (case-insensitive LIKE) in the title or body; snippets are cut in Python.
Snippets are cut from the documents' text with their Markdown taken out (`markdown_plain`): a snippet is a line of
text under a title, and `## Alerts | alert |---|` read as noise. People (active users) are matched by username, name
and email with LIKE on both databases: there are few of them, and the auth tables are not ours to add columns to.
"""

import re
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import BooleanField, FloatField, Prefetch, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from catalog.models import Service, System
from incidents.models import Postmortem
from teams.models import Membership, Team
from techdocs.models import ADR, Runbook

PER_KIND = 8
CANDIDATES = 300
SNIPPET_CHARS = 160
SNIPPET_SOURCE_CHARS = 20_000  # of each document's body: where its snippet is looked for
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
    visible: Q = Q()  # only these rows are found (published postmortems)
    columns: tuple[str, ...] = ()  # the body's columns when there are several
    order: str = ""  # the fallback's order when `title` is not a column


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
    _Kind(
        "postmortems",
        "Postmortems",
        Postmortem,
        "title",
        "summary",
        ("incident",),
        ("incident__title", "summary", "impact", "contributing_factors", "went_well"),
        visible=Q(state=Postmortem.State.PUBLISHED),
        columns=("summary", "impact", "contributing_factors", "went_well"),
        order="-published_at",
    ),
)


# Markdown taken out of snippets, line by line and then inline. Every pattern is linear (no nested quantifiers), so
# a hostile document costs time in proportion to its length.
_MD_LINE_RULES = [
    (re.compile(r"^\s{0,3}(```|~~~).*$", re.M), ""),  # code fences (the code itself is kept)
    (re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$", re.M), ""),  # table separator rows
    (re.compile(r"^\s{0,3}([-*_]\s*){3,}$", re.M), ""),  # horizontal rules
    (re.compile(r"^\s{0,3}(>\s?)+", re.M), ""),  # block quotes
    (re.compile(r"^\s{0,3}#{1,6}(\s+|$)", re.M), ""),  # ATX headings
    (re.compile(r"\s+#+\s*$", re.M), ""),  # closing hashes of a heading
    (re.compile(r"^\s*([-*+]|\d{1,9}[.)])\s+(\[[ xX]\]\s+)?", re.M), ""),  # list items and task boxes
    (re.compile(r"^\s*\||\|\s*$", re.M), ""),  # a table row's outer pipes
    (re.compile(r"^\s*\[[^\]\n]{1,200}\]:\s*\S+.*$", re.M), ""),  # link reference definitions
]
_MD_INLINE_RULES = [
    (re.compile(r"<!--.*?-->", re.S), " "),
    (re.compile(r"</?[A-Za-z][^<>\n]{0,500}>"), " "),  # HTML tags
    (re.compile(r"!?\[([^\]\n]{0,500})\]\([^)\n]{0,2000}\)"), r"\1"),  # links and images: their text
    (re.compile(r"!?\[([^\]\n]{0,500})\]\[[^\]\n]{0,200}\]"), r"\1"),  # reference links
    (re.compile(r"\s*\|\s*"), " · "),  # the pipes between table cells
    (re.compile(r"\*+|~~|(?<!\w)__?|__?(?!\w)|`+"), ""),  # emphasis and code spans (not snake_case)
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),  # backslash escapes
    (re.compile(r"\s+"), " "),
]


def markdown_plain(text: str) -> str:
    """The words of a Markdown document, without its markup, on one line (for snippets, not for display as HTML)."""
    for pattern, replacement in _MD_LINE_RULES + _MD_INLINE_RULES:
        text = pattern.sub(replacement, text)
    return text.strip()


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
    if kind.key == "postmortems":
        return f"{obj.incident.severity} · published {obj.published_at:%d %b %Y}" if obj.published_at else ""
    return ""


def _document(kind: _Kind, obj: Any) -> str:
    """The text a snippet is cut from: the title, then the body (for ADRs, its parts), as plain text."""
    columns = ("body", "context", "decision") if kind.key == "adrs" else (kind.columns or (kind.body,))
    body = " ".join(str(getattr(obj, column) or "") for column in columns)
    return f"{getattr(obj, kind.title)} — {markdown_plain(body[:SNIPPET_SOURCE_CHARS])}"


def _postgres(kind: _Kind, terms: list[str]) -> list[Any]:
    # Only \w characters reach the tsquery, so user input cannot change its syntax.
    tsquery = _tsquery(terms)
    table = kind.model._meta.db_table
    queryset: QuerySet[Any] = (
        kind.model.objects.select_related(*kind.related)
        .filter(kind.visible)
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
        )
        .order_by("-search_rank", "pk")
    )
    return list(queryset[:PER_KIND])


def _tsquery(terms: list[str]) -> str:
    return " & ".join(terms[:-1] + [f"{terms[-1]}:*"])


def _headlines(documents: list[str], terms: list[str]) -> list[str]:
    """ts_headline over plain-text documents, all in one query: the same words marked as the search matched."""
    if not documents:
        return []
    options = "StartSel=\x02, StopSel=\x03, MaxWords=28, MinWords=12, ShortWord=2, MaxFragments=1"
    sql = f"""
        SELECT ts_headline('english', document, to_tsquery('english', %s), '{options}')
        FROM unnest(%s::text[]) WITH ORDINALITY AS documents(document, position) ORDER BY position
    """  # noqa: S608 - the options are ours, every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [_tsquery(terms), documents])
        return [row[0] for row in cursor.fetchall()]


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


def _fallback(kind: _Kind, terms: list[str]) -> list[Any]:
    queryset: QuerySet[Any] = kind.model.objects.select_related(*kind.related).filter(kind.visible)
    for term in terms:
        condition = Q()
        for name in kind.like_fields:
            condition |= Q(**{f"{name}__icontains": term})
        queryset = queryset.filter(condition)
    return list(queryset.order_by(kind.order or kind.title)[:PER_KIND])


def _people(terms: list[str]) -> list[Hit]:
    """Active users whose username, first or last name or email contains every word, with the teams they are in."""
    users = get_user_model().objects.filter(is_active=True)
    for term in terms:
        users = users.filter(
            Q(username__icontains=term)
            | Q(first_name__icontains=term)
            | Q(last_name__icontains=term)
            | Q(email__icontains=term)
        )
    memberships = Membership.objects.select_related("team").order_by("team__name")
    hits = []
    for user in users.prefetch_related(Prefetch("memberships", queryset=memberships)).order_by("username")[:PER_KIND]:
        teams = list(user.memberships.all())  # type: ignore[attr-defined]
        leads = [m for m in teams if m.role == Membership.Role.LEAD]
        home = (leads or teams)[0].team.get_absolute_url() if teams else ""
        roles = ", ".join(f"{m.get_role_display().lower()} of {m.team.name}" for m in teams) or "in no team"
        hits.append(
            Hit(
                title=user.get_full_name() or user.get_username(),
                url=home,
                snippet=_snippet(" · ".join(filter(None, [user.get_username(), user.email])), terms),
                context=f"{user.get_username()} · {roles}",
            )
        )
    return hits


def search(*, query: str) -> list[Group]:
    """Up to PER_KIND hits of each kind for `query`; kinds without a hit are left out."""
    terms = _terms(query)
    if not terms:
        return []
    postgres = connection.vendor == "postgresql"
    found = [(kind, (_postgres if postgres else _fallback)(kind, terms)) for kind in KINDS]
    documents = [_document(kind, obj) for kind, objs in found for obj in objs]
    if postgres:
        snippets = iter([_highlight(text) for text in _headlines(documents, terms)])
    else:
        snippets = iter([_snippet(text, terms) for text in documents])
    groups = []
    for kind, objs in found:
        hits = [
            Hit(
                title=str(getattr(obj, kind.title)),
                url=obj.get_absolute_url(),
                snippet=next(snippets),
                context=_context(kind, obj),
            )
            for obj in objs
        ]
        groups.append(Group(kind=kind.key, label=kind.label, hits=hits))
        if kind.key == "teams":
            groups.append(Group(kind="people", label="People", hits=_people(terms)))
    return [group for group in groups if group.hits]
