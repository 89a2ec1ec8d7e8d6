"""The catalog page's rows and filter choices, read and drawn for a page that is fast without its cache.

A page of 50 services is one statement: the services' stored documents (catalog/documents.py: tags and verified
ownership included), their owner's and system's names, and whether a runbook is stale, with no model instances. Rows
are drawn in Python, as `fast_select` draws the filters: through the template engine, 50 rows of links, dates and
badges cost more than every query of the page together. The filters' choices (hundreds of teams, systems and tags)
are one query.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import CharField, Exists, F, OuterRef, QuerySet, Subquery, Value
from django.forms import BoundField
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString, mark_safe

from catalog import documents
from catalog.models import Service, System, Tag
from portal.templatetags.portal_tags import SelectOptions, select_options, text_escaped
from teams.models import Team

LIFECYCLE_LABELS = dict(Service.Lifecycle.choices)
TIER_LABELS = {str(value): str(label) for value, label in Service.Tier.choices}
_ROW_FIELDS = ("pk", "stored_document__document", "owner__name", "system__name", "_stale", "_next_due")


@dataclass(slots=True)
class ServiceRow:
    """What the catalog table shows of one service."""

    pk: int
    slug: str
    name: str
    owner_slug: str
    owner_name: str
    system_slug: str | None
    system_name: str | None
    lifecycle: str
    tier: int
    tags: list[str] = field(default_factory=list)
    verified_at: datetime | None = None
    orphaned_since: datetime | None = None
    has_stale_runbook: bool = False

    def get_absolute_url(self) -> str:
        return reverse("catalog:service-detail", kwargs={"slug": self.slug})


def rows_queryset(queryset: QuerySet[Service]) -> QuerySet[Any]:
    """`queryset` (filtered and ordered) as the rows `rows_load` reads: one statement per page, whatever it holds."""
    from techdocs.models import Runbook  # techdocs builds on the catalog, not the other way round

    now = timezone.now()
    runbooks = Runbook.objects.filter(service=OuterRef("pk")).order_by()
    return (
        queryset.prefetch_related(None)
        .annotate(
            _stale=Exists(runbooks.filter(review_due_at__lt=now)),
            # When a mark turns by the clock alone: the earliest review still to fall due (see rows_load).
            _next_due=Subquery(
                runbooks.filter(review_due_at__gte=now).order_by("review_due_at").values("review_due_at")[:1]
            ),
        )
        .values_list(*_ROW_FIELDS)
    )


def _time(text: str | None) -> datetime | None:
    return parse_datetime(text) if text else None


def rows_load(raw: list[tuple[Any, ...]]) -> tuple[list[ServiceRow], datetime | None]:
    """Rows from `rows_queryset`'s tuples, and until when their stale-runbook marks hold (the earliest review still
    to fall due on the page, or None): until then, and until the catalog changes, the page stands."""
    missing = [pk for pk, document, *_rest in raw if document is None]
    built = documents.render(missing, lock=False) if missing else {}  # written around the model (a bare bulk_create)
    rows, turns = [], None
    for pk, document, owner_name, system_name, stale, next_due in raw:
        data = json.loads(document if document is not None else built[pk])
        rows.append(
            ServiceRow(
                pk=pk,
                slug=data["slug"],
                name=data["name"],
                owner_slug=data["owner"],
                owner_name=owner_name,
                system_slug=data["system"],
                system_name=system_name,
                lifecycle=data["lifecycle"],
                tier=data["tier"],
                tags=data["tags"],
                verified_at=_time(data["ownership_verified_at"]),
                orphaned_since=_time(data["orphaned_since"]),
                has_stale_runbook=stale,
            )
        )
        if next_due is not None and (turns is None or next_due < turns):
            turns = next_due
    return rows, turns


def _url_parts(name: str) -> tuple[str, str]:
    before, _, after = reverse(name, kwargs={"slug": "__slug__"}).partition("__slug__")
    return before, after


def rows_html(rows: list[ServiceRow]) -> SafeString:
    """The table rows of templates/catalog/service_list.html for these services (the empty row when there are none).

    Every value is escaped here, as `format_html` would escape it, but through `text_escaped`: `format_html`'s lazy
    wrapper around `escape` cost more than drawing the rows (fifteen values a row, fifty rows)."""
    e = text_escaped
    service_url, team_url, system_url = (
        tuple(e(part) for part in _url_parts(name))
        for name in ("catalog:service-detail", "teams:team-detail", "catalog:system-detail")
    )
    parts = []
    for row in rows:
        stale = (
            ' <span class="badge badge-stale" title="A runbook is past its review date">stale runbook</span>'
            if row.has_stale_runbook
            else ""
        )
        if row.system_slug is not None:
            system = f'<a href="{system_url[0]}{e(row.system_slug)}{system_url[1]}">{e(row.system_name)}</a>'
        else:
            system = '<span class="muted">—</span>'
        tags = "".join(f'<a class="tag" href="?tag={e(tag)}">{e(tag)}</a>' for tag in row.tags)
        if row.orphaned_since:
            verified = '<span class="badge badge-stale">orphaned</span>'
        elif row.verified_at:
            local = timezone.localtime(row.verified_at)
            verified = (
                f'<time datetime="{e(date_filter(local, "c"))}" class="small">{e(date_filter(local, "j M Y"))}</time>'
            )
        else:
            verified = '<span class="muted small">never</span>'
        slug, tier = e(row.slug), e(row.tier)
        parts.append(
            f'<tr>\n        <td><a href="{service_url[0]}{slug}{service_url[1]}" class="strong">{e(row.name)}</a>'
            f'{stale}<div class="muted mono small">{slug}</div></td>\n'
            f'        <td><a href="{team_url[0]}{e(row.owner_slug)}{team_url[1]}">{e(row.owner_name)}</a></td>\n'
            f"        <td>{system}</td>\n"
            f'        <td><span class="badge badge-{e(row.lifecycle)}">'
            f"{e(LIFECYCLE_LABELS.get(row.lifecycle, row.lifecycle))}</span></td>\n"
            f'        <td><span class="tier tier-{tier}" title="{e(TIER_LABELS.get(str(row.tier), row.tier))}">'
            f"T{tier}</span></td>\n"
            f"        <td>{tags}</td>\n"
            f"        <td>{verified}</td>\n"
            f'        <td><span id="health-{e(row.pk)}" class="muted">…'
            '<span class="visually-hidden">health loading</span></span></td>\n      </tr>'
        )
    return mark_safe("\n".join(parts))  # noqa: S308 - every value escaped above


# The filters whose choices are rows of a table: (model, value column, label column), in the model's order.
_MODEL_CHOICES: dict[str, tuple[type, str, str]] = {
    "owner": (Team, "slug", "name"),
    "system": (System, "slug", "name"),
    "tag": (Tag, "name", "name"),
}


def filter_options(fields: list[BoundField]) -> dict[str, SelectOptions]:
    """`select_options` of each filter field; the owner, system and tag choices read together in one query (a union),
    without the form's model instances. The same options, in the same order, as the fields' own choices."""
    wanted = [bound for bound in fields if bound.name in _MODEL_CHOICES]
    union: QuerySet[Any] | None = None
    for bound in wanted:
        model, value, label = _MODEL_CHOICES[bound.name]
        part = (
            model._default_manager.annotate(  # type: ignore[attr-defined]
                _filter=Value(bound.name, output_field=CharField()), _value=F(value), _label=F(label)
            )
            .values_list("_filter", "_value", "_label")
            .order_by()
        )
        union = part if union is None else union.union(part, all=True)
    found: dict[str, list[tuple[str, str]]] = {bound.name: [] for bound in wanted}
    for name, value, label in union if union is not None else ():
        found[name].append((value, label))
    options: dict[str, SelectOptions] = {}
    for bound in fields:
        if bound.name not in found:
            options[bound.name] = select_options(bound)
            continue
        empty = getattr(bound.field, "empty_label", None)
        head = [("", "", text_escaped(empty))] if empty is not None else []
        # The models' order (by name; the databases here collate by code point, as Python sorts strings).
        rows = sorted(found[bound.name], key=lambda pair: (pair[1], pair[0]))
        options[bound.name] = tuple(
            head + [(str(value), text_escaped(value), text_escaped(label)) for value, label in rows]
        )
    return options
