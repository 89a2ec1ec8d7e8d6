"""Writes for scorecards: saving one (platform admins or a sync, tests must pass, audited) and scoring services.

Scoring reads the fact documents of many services at once (`facts.service_documents`), judges them with compiled
programs and upserts `Score` and `ScoreDay` rows in bulk, so that a whole catalog is scored in seconds; a change to a
service asks for its rescoring through `rescore_schedule`, debounced so that a burst of edits makes one task.
"""

from __future__ import annotations

import hashlib
import json
import time
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import cel
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import QueryDict
from django.utils import timezone

from audit import services as audit
from catalog.models import Service
from governance import facts
from scorecards import definition as definitions
from scorecards import tasks
from scorecards.models import Score, Scorecard, ScoreDay

BATCH = 2000  # services whose documents are built and written together


def _require_admin(user: User | AnonymousUser | None) -> None:
    """`None` is the system (a scorecard sync run by an operator); a person must be a platform admin."""
    if user is not None and not (user.is_authenticated and user.is_staff):
        raise PermissionDenied("Only platform admins may create or change scorecards.")


def _digest(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def _state(scorecard: Scorecard | None) -> dict[str, Any] | None:
    if scorecard is None:
        return None
    return {"enabled": scorecard.enabled, "digest": scorecard.digest, "definition": scorecard.definition}


@transaction.atomic
def scorecard_save(
    *, user: User | AnonymousUser | None, raw: dict[str, Any], source_path: str = "", name: str | None = None
) -> Scorecard:
    """Create or change a scorecard from its definition; refused (ValidationError listing each problem) unless its
    expressions check and every one of its tests gives the expected level. A change rescores its services on commit.

    `name`: the scorecard being edited, whose name the definition may not change."""
    _require_admin(user)
    cleaned = definitions.definition_check(raw)
    if name is not None and cleaned["name"] != name:
        raise ValidationError([f"name: this is the scorecard {name}; a new name makes a new scorecard."])
    if cleaned["name"] == "new":
        raise ValidationError(["name: “new” is reserved for the new-scorecard page; choose another name."])
    if failures := definitions.tests_run(cleaned):
        raise ValidationError([f"not accepted: {failure}" for failure in failures])
    scorecard = Scorecard.objects.select_for_update().filter(name=cleaned["name"]).first()
    before = _state(scorecard)
    if scorecard is None:
        scorecard = Scorecard(name=cleaned["name"])
    scorecard.title, scorecard.description = cleaned["title"], cleaned["description"]
    scorecard.enabled, scorecard.definition = cleaned["enabled"], cleaned
    scorecard.digest, scorecard.source_path, scorecard.missing_since = _digest(cleaned), source_path, None
    scorecard.updated_by = user if isinstance(user, User) else None
    scorecard.full_clean()
    scorecard.save()
    after = _state(scorecard)
    if before != after:
        action = "scorecard.created" if before is None else "scorecard.changed"
        audit.event_record(actor=user, action=action, target=scorecard, before=before, after=after)
        tasks.rescore_scorecard.delay_on_commit(scorecard.pk)
    return scorecard


@transaction.atomic
def scorecard_disable_missing(*, scorecard: Scorecard, user: User | AnonymousUser | None) -> Scorecard:
    """A scorecard gone from the files it was synced from: disabled and marked, never deleted (its history stays)."""
    _require_admin(user)
    scorecard = Scorecard.objects.select_for_update().get(pk=scorecard.pk)
    if scorecard.missing_since is not None and not scorecard.enabled:
        return scorecard
    before = _state(scorecard)
    scorecard.enabled, scorecard.missing_since = False, timezone.now()
    scorecard.save(update_fields=["enabled", "missing_since", "updated_at"])
    audit.event_record(actor=user, action="scorecard.missing", target=scorecard, before=before, after=_state(scorecard))
    Score.objects.filter(scorecard=scorecard).delete()  # a disabled scorecard grades nobody; its history stays
    return scorecard


def rescore_schedule(*, service_id: int) -> None:
    """Ask a worker to rescore one service shortly; the first ask in a burst enqueues, the rest find it pending.

    The task clears the mark before it reads anything, so a change made while it runs asks again."""
    delay = settings.SCORECARDS["RESCORE_DELAY_SECONDS"]
    if cache.add(pending_key(service_id), 1, timeout=delay + 60):  # expires even if the task is lost
        tasks.rescore_service.apply_async((service_id,), countdown=delay)


def pending_key(service_id: int) -> str:
    return f"scorecards:rescore:{service_id}"


def org_day(at: datetime) -> date:
    return at.astimezone(zoneinfo.ZoneInfo(settings.GOVERNANCE["ORG_TIME_ZONE"])).date()


@dataclass
class Scoring:
    """What one scoring run did."""

    services: int = 0  # services whose documents were built
    scores: int = 0  # (scorecard, service) scores written
    removed: int = 0  # scores of services that left a scorecard's scope
    seconds: float = 0.0


def _in_scope(scorecard: Scorecard, service_ids: Sequence[int] | None) -> set[int]:
    """The services a scorecard's catalog filter keeps (decommissioned services are never scored)."""
    services = Service.objects.exclude(lifecycle=Service.Lifecycle.DECOMMISSIONED)
    if service_ids is not None:
        services = services.filter(pk__in=service_ids)
    wanted = scorecard.definition.get("catalogFilter") or {}
    if wanted:
        from catalog.filters import ServiceFilterSet

        data = QueryDict(mutable=True)
        data.update(wanted)
        services = ServiceFilterSet(data, queryset=services).qs
    return set(services.order_by().values_list("pk", flat=True))


def scores_compute(
    *,
    scorecards: Iterable[Scorecard] | None = None,
    service_ids: Sequence[int] | None = None,
    at: datetime | None = None,
) -> Scoring:
    """Score `service_ids` (every service when None) on `scorecards` (every scorecard when None), now or `at`.

    Idempotent: it upserts each service's score and today's history row. A service out of a scorecard's scope (or on a
    disabled scorecard) loses its score, never its history."""
    started = time.perf_counter()
    at = at or timezone.now()
    day = org_day(at)
    cards = list(scorecards) if scorecards is not None else list(Scorecard.objects.all())
    report = Scoring()
    live = [card for card in cards if card.enabled]
    for card in cards:
        if not card.enabled:
            report.removed += Score.objects.filter(scorecard=card).delete()[0]
    scopes = {card.pk: _in_scope(card, service_ids) for card in live}
    wanted = sorted(set().union(*scopes.values())) if scopes else []
    scored: dict[int, set[int]] = {card.pk: set() for card in live}
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        documents = facts.service_documents(service_ids=batch, at=at)
        rows: list[Score] = []
        days: list[ScoreDay] = []
        for service_id, document in documents.items():
            context = cel.Context(document)
            for card in live:
                if service_id not in scopes[card.pk]:
                    continue
                outcome = definitions.evaluate(card.definition, context)
                if not outcome.applies:
                    continue
                scored[card.pk].add(service_id)
                rows.append(
                    Score(
                        scorecard_id=card.pk,
                        service_id=service_id,
                        rank=outcome.rank,
                        level=outcome.level,
                        failing=outcome.failing,
                        passed=outcome.passed,
                        total=outcome.total,
                        scored_at=at,
                    )
                )
                days.append(
                    ScoreDay(
                        scorecard_id=card.pk, service_id=service_id, day=day, rank=outcome.rank, level=outcome.level
                    )
                )
        report.services += len(documents)
        with transaction.atomic():
            Score.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["scorecard", "service"],
                update_fields=["rank", "level", "failing", "passed", "total", "scored_at"],
            )
            ScoreDay.objects.bulk_create(
                days,
                update_conflicts=True,
                unique_fields=["scorecard", "service", "day"],
                update_fields=["rank", "level"],
            )
        report.scores += len(rows)
    for card in live:
        stale = Score.objects.filter(scorecard=card)
        if service_ids is not None:
            stale = stale.filter(service_id__in=service_ids)
        report.removed += stale.exclude(service_id__in=scored[card.pk]).delete()[0]
    report.seconds = time.perf_counter() - started
    return report
