"""What review pages draw in Python: the team page's rows of services (a campaign's burn-up is portal.charts')."""

from collections.abc import Callable
from datetime import date, datetime
from html import escape
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

NEVER = mark_safe('<span class="muted">never</span>')
DASH = mark_safe("—")
MUTED_DASH = mark_safe('<span class="muted">—</span>')


def _url_maker(name: str, key: str, sample: str) -> Callable[[object], str]:
    """A route's URL for any value of its one argument, reversed once instead of once per row."""
    prefix, suffix = reverse(name, kwargs={key: sample}).split(sample)
    return lambda value: f"{prefix}{value}{suffix}"


def _day(moment: date | datetime) -> str:
    if isinstance(moment, datetime):
        moment = timezone.localtime(moment).date()
    return f"{moment.day} {moment:%b %Y}"


def team_rows(rows: list[Any], *, answerable: bool, today: date) -> SafeString:
    """The team page's service rows. A template loop over 500 rows of six cells costs some 12,000 variable lookups
    (about a second on a busy machine), and even format_html's lazy escaping costs a third of that; every value from
    the database goes through the standard library's html.escape (quotes included) here instead."""
    service_url = _url_maker("catalog:service-detail", "slug", "slug-sample-x")
    item_url = _url_maker("reviews:item-detail", "pk", "987654321")
    lines = []
    for row in rows:
        name = escape(row.name)
        cells = []
        if answerable:
            check = ""
            if row.item:
                check = (
                    f'<input type="checkbox" name="items" value="{row.item[0]}" id="confirm-{escape(row.slug)}" '
                    f'aria-label="Still ours: {name}">'
                )
            cells.append(f"<td>{check}</td>")
        cells.append(
            f'<td><a href="{escape(service_url(row.slug))}"><strong>{name}</strong></a> '
            f'<span class="tier tier-{int(row.tier)}">T{int(row.tier)}</span></td>'
        )
        verified: str = NEVER
        if row.verified_at:
            verified = f'{_day(row.verified_at)} <span class="muted small">by {escape(row.verified_by or "—")}</span>'
        if row.orphaned:
            verified = f'<span class="badge badge-stale">orphaned</span> {verified}'
        cells.append(f"<td>{verified}</td>")
        review: str = DASH
        if row.item:
            due = row.item[1]
            label = "overdue" if due < today else f"due {due.day} {due:%b}"
            review = f'<a href="{item_url(int(row.item[0]))}">{label}</a>'
        cells.append(f"<td>{review}</td>")
        cards = "<br>".join(
            f'<a href="{escape(found.scorecard.get_absolute_url())}" class="small">{escape(found.scorecard.title)}: '
            f"{escape(found.score.level or 'no level')}</a>"
            + (
                f' <span class="muted small" title="{escape("; ".join(rule.name for rule in found.failing))}">'
                f"({len(found.failing)} failing)</span>"
                if found.failing
                else ""
            )
            for found in row.scores
        )
        cells.append(f"<td>{cards or MUTED_DASH}</td>")
        stale = f'<span class="badge badge-stale">{int(row.stale)} stale</span>' if row.stale else MUTED_DASH
        cells.append(f"<td>{stale}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return mark_safe("\n".join(lines))  # noqa: S308 - every value from the database is escaped above
