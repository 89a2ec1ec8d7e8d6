"""Reads for runbooks and ADRs, and their rendering (cached by content, since Markdown is costly to render)."""

import difflib
import hashlib

from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Service
from techdocs import markdown
from techdocs.models import ADR, Runbook, RunbookVersion

RENDER_CACHE_SECONDS = 24 * 3600


def markdown_render(*, text: str) -> markdown.Rendered:
    """Render Markdown through the sanitiser; the result is cached under a hash of the text (a text over the limits
    too: its plain-text stand-in is as cheap to rebuild, but not to check)."""
    key = f"md{markdown.RENDER_VERSION}:" + hashlib.sha256(text.encode()).hexdigest()
    rendered = cache.get(key)
    if rendered is None:
        rendered = markdown.render(text=text)
        cache.set(key, rendered, RENDER_CACHE_SECONDS)
    return rendered


def runbook_list_for_service(*, service: Service) -> list[Runbook]:
    """The service page's list: without the bodies, which it does not show."""
    shown = ("slug", "title", "review_due_at", "last_reviewed_at", "last_reviewed_by", "version")
    return list(service.runbooks.only("service_id", *shown).order_by("title"))


def runbook_list_stale() -> QuerySet[Runbook]:
    """Runbooks never reviewed or past their review interval, oldest due first."""
    return (
        Runbook.objects.filter(review_due_at__lt=timezone.now())
        .select_related("service__owner")
        .order_by("review_due_at")
    )


def runbook_versions(*, runbook: Runbook) -> QuerySet[RunbookVersion]:
    return runbook.versions.select_related("author").order_by("-number")


def version_diff(*, older: RunbookVersion, newer: RunbookVersion) -> list[tuple[str, str]]:
    """A unified line diff between two versions, as (kind, line) pairs with kind in add/del/hunk/same."""
    lines = difflib.unified_diff(
        f"# {older.title}\n{older.body}".splitlines(),
        f"# {newer.title}\n{newer.body}".splitlines(),
        fromfile=f"version {older.number}",
        tofile=f"version {newer.number}",
        lineterm="",
        n=3,
    )
    kinds = []
    for line in lines:
        if line.startswith(("---", "+++")):
            kinds.append(("file", line))
        elif line.startswith("@@"):
            kinds.append(("hunk", line))
        elif line.startswith("+"):
            kinds.append(("add", line))
        elif line.startswith("-"):
            kinds.append(("del", line))
        else:
            kinds.append(("same", line))
    return kinds


def adr_markdown(*, adr: ADR) -> str:
    """The Markdown an ADR page shows: an imported file's text after its front matter, else the three sections."""
    if adr.body:
        try:
            _meta, text = markdown.split_front_matter(text=adr.body)
        except ValueError:
            return adr.body
        return text
    return "\n\n".join(
        f"## {heading}\n\n{value}"
        for heading, value in (("Context", adr.context), ("Decision", adr.decision), ("Consequences", adr.consequences))
        if value
    )


def adr_list_for_service(*, service: Service) -> list[ADR]:
    """The service page's list: numbers, titles and statuses, and where a superseding decision lives (for its link),
    without the decisions' text."""
    superseding = ("number", "service_id", "system_id", "service__slug", "system__slug")
    return list(
        service.adrs.select_related("superseded_by__service", "superseded_by__system")
        .only("service_id", "number", "title", "status", *(f"superseded_by__{f}" for f in superseding))
        .order_by("number")
    )


def adr_get(*, service: Service, number: int) -> ADR:
    return (
        ADR.objects.select_related("service__owner", "superseded_by")
        .prefetch_related("supersedes")
        .get(service=service, number=number)
    )
