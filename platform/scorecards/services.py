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
from datetime import date, datetime, timedelta
from typing import Any

import cel
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from catalog.models import Service
from governance import facts
from scorecards import definition as definitions
from scorecards import tasks
from scorecards.models import Initiative, InitiativeReminder, Score, Scorecard, ScoreDay

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
    if cleaned["name"] in ("new", "initiatives"):
        raise ValidationError([f"name: “{cleaned['name']}” is reserved for a page's address; choose another name."])
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
    services = definitions.catalog_filter_apply(services, scorecard.definition.get("catalogFilter") or {})
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
    # Only catalog filters need a query; decommissioned services are left out from their documents.
    scopes = {card.pk: _in_scope(card, service_ids) for card in live if card.definition.get("catalogFilter")}
    if not live:
        wanted: list[int] = []
    elif service_ids is not None:
        wanted = sorted(set(service_ids))
    else:
        active = Service.objects.exclude(lifecycle=Service.Lifecycle.DECOMMISSIONED)
        wanted = sorted(active.values_list("pk", flat=True))
    scored: dict[int, set[int]] = {card.pk: set() for card in live}
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        documents = facts.service_documents(service_ids=batch, at=at)
        rows: list[Score] = []
        days: list[ScoreDay] = []
        for service_id, document in documents.items():
            if document["service"]["lifecycle"] == Service.Lifecycle.DECOMMISSIONED:
                continue
            context = cel.Context(document)
            for card in live:
                if card.pk in scopes and service_id not in scopes[card.pk]:
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
                        scorecard_id=card.pk,
                        service_id=service_id,
                        day=day,
                        rank=outcome.rank,
                        level=outcome.level,
                        failing=[item["rule"] for item in outcome.failing],
                    )
                )
        report.services += len(documents)
        # Each upsert stands alone (no transaction: two round trips fewer); a crash between them leaves a score
        # without its day's row, which the next scoring writes.
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
            update_fields=["rank", "level", "failing"],
        )
        report.scores += len(rows)
    for card in live:
        stale = Score.objects.filter(scorecard=card)
        if service_ids is not None:
            if scored[card.pk].issuperset(service_ids):
                continue  # every service asked for was scored: none can have left the scope
            stale = stale.filter(service_id__in=service_ids)
        report.removed += stale.exclude(service_id__in=scored[card.pk]).delete()[0]
    report.seconds = time.perf_counter() - started
    return report


def _initiative_state(initiative: Initiative) -> dict[str, Any]:
    return {
        "title": initiative.title,
        "scorecard": initiative.scorecard.name,
        "target_rank": initiative.target_rank,
        "rule_keys": initiative.rule_keys,
        "scope": initiative.scope,
        "deadline": initiative.deadline.isoformat(),
        "ended_at": initiative.ended_at.isoformat() if initiative.ended_at else None,
    }


@transaction.atomic
def initiative_create(
    *,
    user: User | AnonymousUser | None,
    name: str,
    title: str,
    scorecard: Scorecard,
    deadline: date,
    target_rank: int = 0,
    rule_keys: Sequence[str] = (),
    scope: dict[str, Any] | None = None,
    description: str = "",
) -> Initiative:
    """Start a campaign of standards (platform admins): a scorecard level, or a set of its rules, for the services in
    a catalog scope, by a deadline. Field errors say what to fix."""
    _require_admin(user)
    errors: dict[str, list[str]] = {}
    keys = list(dict.fromkeys(str(key).strip() for key in rule_keys if str(key).strip()))
    if bool(target_rank) == bool(keys):
        errors["target_rank"] = ["Choose a level to reach, or a set of the scorecard's rules to pass (not both)."]
    elif target_rank and not 0 < target_rank <= len(scorecard.levels):
        errors["target_rank"] = [f"{scorecard} has levels 1 to {len(scorecard.levels)}."]
    unknown = sorted(set(keys) - set(scorecard.rules()))
    if unknown:
        errors["rule_keys"] = [f"{scorecard} has no rule {', '.join(unknown)}; it has {', '.join(scorecard.rules())}."]
    wanted, problems = definitions.catalog_filter_parse(scope or {})
    if problems:
        errors["scope"] = problems
    if deadline < org_day(timezone.now()):
        errors["deadline"] = ["The deadline has passed; choose today or a later day."]
    if not scorecard.enabled:
        errors["scorecard"] = [f"{scorecard} is disabled: it scores nobody."]
    if name in ("new",):
        errors["name"] = ["“new” is reserved for the new-initiative page; choose another name."]
    if errors:
        raise ValidationError(errors)
    initiative = Initiative(
        name=name.strip(),
        title=title.strip(),
        description=description.strip(),
        scorecard=scorecard,
        target_rank=target_rank,
        rule_keys=keys,
        scope=dict(wanted.items()),
        deadline=deadline,
        created_by=user if isinstance(user, User) else None,
    )
    initiative.full_clean()
    initiative.save()
    audit.event_record(actor=user, action="initiative.created", target=initiative, after=_initiative_state(initiative))
    return initiative


@transaction.atomic
def initiative_end(*, initiative: Initiative, user: User | AnonymousUser | None = None) -> Initiative:
    """End an initiative (at its deadline, by beat; or earlier, by a platform admin) and write the report of who made
    it: per team, and each service that did not with the rules it still failed. Ending twice changes nothing."""
    _require_admin(user)
    from scorecards import selectors  # selectors read models only; imported here as the house's services do

    initiative = Initiative.objects.select_for_update().select_related("scorecard").get(pk=initiative.pk)
    if initiative.ended_at is not None:
        return initiative
    progress = selectors.initiative_progress(initiative=initiative)
    initiative.ended_at = timezone.now()
    initiative.report = {
        "ended_at": initiative.ended_at.isoformat(),
        "total": progress.total,
        "met": progress.met,
        "teams": [
            {"team": row.team_slug, "name": row.team_name, "total": row.total, "met": row.met} for row in progress.teams
        ],
        "missed": [
            {
                "service": row.service_slug,
                "name": row.service_name,
                "team": row.team_slug,
                "level": row.level,
                "failing": row.failing,
            }  # fmt: skip
            for row in progress.missing
        ],
    }
    initiative.save(update_fields=["ended_at", "report"])
    audit.event_record(
        actor=user,
        action="initiative.ended",
        target=initiative,
        after={"total": progress.total, "met": progress.met, "deadline": initiative.deadline.isoformat()},
    )
    return initiative


def initiatives_due_end(*, today: date | None = None) -> int:
    """End every open initiative whose deadline has passed (beat); returns how many ended."""
    today = today or org_day(timezone.now())
    due = Initiative.objects.filter(ended_at__isnull=True, deadline__lt=today)
    return sum(1 for initiative in due if initiative_end(initiative=initiative).ended_at)


def _recipients(team_ids: Iterable[int]) -> dict[int, list[str]]:
    """The leads' and maintainers' addresses per team: active users with an address, never a deactivated one."""
    from teams.models import Membership

    found: dict[int, list[str]] = {}
    rows = Membership.objects.filter(
        team_id__in=list(team_ids),
        role__in=[Membership.Role.LEAD, Membership.Role.MAINTAINER],
        user__is_active=True,
    ).exclude(user__email="")
    for team_id, email in rows.values_list("team_id", "user__email").order_by("team_id", "user__email"):
        found.setdefault(team_id, [])
        if email not in found[team_id]:
            found[team_id].append(email)
    return found


def initiative_reminders_send(*, today: date | None = None) -> int:
    """Remind each team with services not there yet, in the last REMIND_DAYS_BEFORE days before an initiative's
    deadline and on it: one mail per team and day, whatever the number of beat or worker processes (the unique
    reminder row is inserted in the sending transaction; a second process waits on it, then finds it taken).
    Returns the mails sent."""
    from django.core.mail import send_mail
    from django.db import IntegrityError
    from django.template.loader import render_to_string

    from scorecards import selectors

    today = today or org_day(timezone.now())
    window = settings.SCORECARDS["REMIND_DAYS_BEFORE"]
    open_initiatives = Initiative.objects.filter(
        ended_at__isnull=True, deadline__gte=today, deadline__lte=today + timedelta(days=window)
    ).select_related("scorecard")
    sent = 0
    for initiative in open_initiatives:
        progress = selectors.initiative_progress(initiative=initiative)
        by_team: dict[int, list[selectors.Missing]] = {}
        for row in progress.missing:
            by_team.setdefault(row.team_id, []).append(row)
        recipients = _recipients(by_team)
        rules = initiative.scorecard.rules()
        for team_id, rows in by_team.items():
            addresses = recipients.get(team_id, [])
            try:
                with transaction.atomic():
                    InitiativeReminder.objects.create(
                        initiative=initiative, team_id=team_id, day=today, services=len(rows),
                        recipients=len(addresses),
                    )  # fmt: skip
                    if addresses:
                        listed = [
                            {"name": row.service_name, "slug": row.service_slug, "level": row.level,
                             "fixes": [(rules[key]["name"], rules[key]["fix"]) for key in row.failing if key in rules]}
                            for row in rows
                        ]  # fmt: skip
                        days_left = (initiative.deadline - today).days
                        context = {"initiative": initiative, "rows": listed, "days_left": days_left,
                                   "team": rows[0].team_name}  # fmt: skip
                        send_mail(
                            subject=f"[Runway] {initiative.title}: {len(rows)} of your services are not there yet",
                            message=render_to_string("scorecards/initiative_reminder.txt", context),
                            from_email=None,
                            recipient_list=addresses,
                        )
                        sent += 1
            except IntegrityError:
                continue  # another process reminded this team today
    return sent
