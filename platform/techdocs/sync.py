"""Runbooks and ADRs arriving with a catalog import, written in bulk for the components that changed.

Runbooks are matched by slug (from the file name) and ADRs by number; a changed runbook gets a new version, so
the history shows what each sync brought. Docs that vanished from the source are kept, not deleted.
"""

from collections.abc import Collection
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from catalog import bulk
from catalog.descriptors import Entity
from catalog.models import Service
from techdocs import files
from techdocs.models import ADR, Runbook, RunbookVersion, review_due


def docs_import(
    *,
    components: list[tuple[Entity, Service]],
    actor: User | None,
    report: Any,
    now: Any,
    created: Collection[int] = (),
) -> None:
    """Upsert the runbooks and ADRs found next to each component's descriptor; `created` services (new in this
    import) have none yet, so they are not looked up."""
    if not components:
        return
    ids = [service.pk for _, service in components if service.pk not in created]
    runbooks = {(r.service_id, r.slug): r for r in Runbook.objects.filter(service_id__in=ids)}
    adrs = {(a.service_id, a.number): a for a in ADR.objects.filter(service_id__in=ids)}
    author = actor.get_username() if actor else "system"
    new_runbooks, changed_runbooks, versions = [], [], []
    new_adrs, changed_adrs, links = [], [], []
    for entity, service in components:
        for path, text in entity.docs:
            parsed: files.ParsedADR | files.ParsedRunbook | None
            if path in entity.parsed_docs:  # read once already, by catalog.sync._docs_check
                parsed = entity.parsed_docs[path]
            else:
                try:
                    parsed = files.doc_parse(path=path, text=text)
                except ValueError:  # FileError included
                    parsed = None
            if parsed is None:
                continue  # catalog.sync._docs_check reported it when it read the tree
            if isinstance(parsed, files.ParsedADR):
                parsed_adr = parsed
                adr = adrs.get((service.pk, parsed_adr.number))
                values = {
                    "title": parsed_adr.title,
                    "status": parsed_adr.status,
                    "date": parsed_adr.date,
                    "deciders": parsed_adr.deciders,
                    "body": parsed_adr.body,
                    "source_path": path,
                }
                if adr is None:
                    adr = ADR(service=service, number=parsed_adr.number, **values)
                    new_adrs.append(adr)
                    adrs[(service.pk, adr.number)] = adr
                elif any(getattr(adr, key) != value for key, value in values.items()):
                    for key, value in values.items():
                        setattr(adr, key, value)
                    adr.updated_at = now  # bulk_update skips auto_now
                    changed_adrs.append(adr)
                links.append((service.pk, parsed_adr))
                continue
            parsed_runbook = parsed
            runbook = runbooks.get((service.pk, parsed_runbook.slug))
            # A file without reviewed_at keeps the review state Runway has; only a new runbook starts reviewed now.
            keep_review = runbook is not None and parsed_runbook.reviewed_at is None
            reviewed_at = runbook.last_reviewed_at if keep_review else (parsed_runbook.reviewed_at or now)
            reviewed_by = runbook.last_reviewed_by if keep_review else (parsed_runbook.reviewed_by or author)
            values = {
                "title": parsed_runbook.title,
                "body": parsed_runbook.body,
                "review_interval_days": parsed_runbook.review_interval_days,
                "last_reviewed_at": reviewed_at,
                "last_reviewed_by": reviewed_by,
                "source_path": path,
            }
            if runbook is None:
                runbook = Runbook(service=service, slug=parsed_runbook.slug, version=1, **values)
                runbook.review_due_at = review_due(reviewed_at, runbook.review_interval_days)
                new_runbooks.append(runbook)
                runbooks[(service.pk, runbook.slug)] = runbook
            elif any(getattr(runbook, key) != value for key, value in values.items()):
                content_changed = (runbook.title, runbook.body) != (values["title"], values["body"])
                for key, value in values.items():
                    setattr(runbook, key, value)
                runbook.review_due_at = review_due(reviewed_at, runbook.review_interval_days)
                if content_changed:
                    runbook.version += 1
                    versions.append(runbook)
                runbook.updated_at = now  # bulk_update skips auto_now
                changed_runbooks.append(runbook)
    bulk.objects_insert(Runbook, new_runbooks)
    Runbook.objects.bulk_update(
        changed_runbooks,
        [
            "title",
            "body",
            "review_interval_days",
            "last_reviewed_at",
            "last_reviewed_by",
            "review_due_at",
            "version",
            "source_path",
            "updated_at",
        ],
        batch_size=2000,
    )
    bulk.objects_insert(
        RunbookVersion,
        [
            RunbookVersion(
                runbook=r,
                number=r.version,
                title=r.title,
                body=r.body,
                author=actor,
                author_repr=author,
                note=f"imported from {r.source_path}"[:300],  # the note's column; source_path holds it whole
                created_at=now,
            )
            for r in [*new_runbooks, *versions]
        ],
    )
    bulk.objects_insert(ADR, new_adrs)
    ADR.objects.bulk_update(
        changed_adrs, ["title", "status", "date", "deciders", "body", "source_path", "updated_at"], batch_size=2000
    )
    _supersede_links(links, adrs)


def _supersede_links(links: list[tuple[int, files.ParsedADR]], adrs: dict[tuple[int, int], ADR]) -> None:
    """Point superseded ADRs at their successors, from either side's wording; unknown numbers are ignored."""
    updates: dict[int, ADR] = {}
    for service_id, parsed in links:
        pairs = [(parsed.number, parsed.superseded_by)] if parsed.superseded_by else []
        pairs += [(older, parsed.number) for older in parsed.supersedes]
        for older_number, newer_number in pairs:
            older, newer = adrs.get((service_id, older_number)), adrs.get((service_id, newer_number or 0))
            if older is None or newer is None or older.pk == newer.pk:
                continue
            if older.superseded_by_id != newer.pk or older.status != ADR.Status.SUPERSEDED:
                older.superseded_by, older.status = newer, ADR.Status.SUPERSEDED
                older.updated_at = timezone.now()  # bulk_update skips auto_now
                updates[older.pk] = older
    ADR.objects.bulk_update(list(updates.values()), ["superseded_by", "status", "updated_at"], batch_size=2000)
