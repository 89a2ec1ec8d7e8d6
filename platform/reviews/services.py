"""Writes for ownership reviews. Answers act through the catalog's, techdocs' and decommissioning's own service
functions, so their permissions, audit events and catalog-as-code locks hold here too."""

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from audit import services as audit
from catalog import cache as catalog_cache
from catalog import services as catalog_services
from catalog.models import Service
from portal.errors import Conflict
from reviews import permissions, selectors
from reviews.models import DEFAULT_QUESTIONS, QUESTIONS, Campaign, Handover, Item, Ownership
from teams.models import Team

# The service fields the "details" question covers, each changed through catalog.services.service_update.
DETAIL_FIELDS = ("on_call_url", "chat_channel", "tier", "lifecycle")
ORPHAN_CAMPAIGN_TITLE = "Orphaned services"


@dataclass
class Answer:
    """What a reviewer says about one service. Only the questions the campaign asks are read."""

    ownership: str = "confirm"  # confirm | handover | not_ours
    handover_to: Team | None = None
    details: dict[str, Any] = field(default_factory=dict)  # only the fields that are wrong, with their right value
    runbooks_valid: bool | None = None
    retire: bool = False
    retire_reason: str = ""
    retire_on: date | None = None
    comment: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "ownership": self.ownership,
            "handover_to": self.handover_to.slug if self.handover_to else None,
            "details": {name: value for name, value in self.details.items()},
            "runbooks_valid": self.runbooks_valid,
            "retire": self.retire,
            "retire_on": self.retire_on.isoformat() if self.retire_on else None,
        }


def _refuse_unless_staff(user: User, what: str) -> None:
    if not permissions.can_manage_campaigns(user):
        raise PermissionDenied(f"Only platform admins may {what}.")


@transaction.atomic
def campaign_open(
    *,
    opened_by: User,
    title: str,
    scope: dict[str, Any],
    due_on: date,
    message: str = "",
    questions: list[str] | None = None,
) -> Campaign:
    """Open a campaign over the services its scope selects: one item each, bulk-created, assigned to the owning
    team; one audit event for the campaign, not one per service."""
    _refuse_unless_staff(opened_by, "open review campaigns")
    errors: dict[str, list[str]] = {}
    asked = list(DEFAULT_QUESTIONS if questions is None else questions)
    if "ownership" not in asked:
        asked.insert(0, "ownership")
    unknown = [q for q in asked if q not in QUESTIONS]
    if unknown:
        errors["questions"] = [f"Unknown question {', '.join(unknown)}; choose from {', '.join(QUESTIONS)}."]
    if due_on < timezone.localdate():
        errors["due_on"] = ["The due date cannot be in the past."]
    try:
        services = selectors.scope_services(scope)
        summary = selectors.scope_describe(scope)
    except ValidationError as error:
        errors.update(error.message_dict)
        services, summary = Service.objects.none(), ""
    if errors:
        raise ValidationError(errors)
    campaign = Campaign(
        title=title.strip(),
        kind=Campaign.Kind.MANUAL,
        scope=selectors.scope_clean(scope),
        scope_summary=summary,
        message=message.strip(),
        questions=[q for q in QUESTIONS if q in asked],
        due_on=due_on,
        created_by=opened_by,
    )
    campaign.full_clean()
    rows = list(services.values_list("pk", "owner_id"))
    if not rows:
        raise ValidationError({"scope": ["No service (other than retired ones) matches this scope."]})
    campaign.save()
    now = timezone.now()
    Item.objects.bulk_create(
        [
            Item(campaign=campaign, service_id=pk, team_id=owner_id, due_on=due_on, created_at=now)
            for pk, owner_id in rows
        ],
        batch_size=2000,
    )
    audit.event_record(
        actor=opened_by,
        action="review.campaign_opened",
        target=campaign,
        after={"title": campaign.title, "scope": campaign.scope, "due_on": due_on.isoformat(), "items": len(rows)},
    )
    return campaign


@transaction.atomic
def campaign_close(*, campaign: Campaign, closed_by: User) -> Campaign:
    """Close a campaign: it accepts no more answers; items still open are recorded as unanswered."""
    _refuse_unless_staff(closed_by, "close review campaigns")
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if not campaign.is_open:
        raise Conflict(f"{campaign} is already closed.")
    unanswered = campaign.items.filter(status=Item.Status.OPEN).update(status=Item.Status.EXPIRED)
    campaign.status, campaign.closed_at, campaign.closed_by = Campaign.Status.CLOSED, timezone.now(), closed_by
    campaign.save(update_fields=["status", "closed_at", "closed_by"])
    audit.event_record(
        actor=closed_by, action="review.campaign_closed", target=campaign, after={"unanswered": unanswered}
    )
    return campaign


def ownership_verify(*, service: Service, verified_by: User, at: Any = None) -> Ownership:
    """Record that the owning team (or an admin) confirmed it owns the service; clears an orphan flag."""
    moment = at or timezone.now()
    ownership, _ = Ownership.objects.select_for_update().get_or_create(service=service)
    before = {"verified_at": ownership.verified_at.isoformat() if ownership.verified_at else None}
    ownership.verified_at, ownership.verified_by = moment, verified_by
    ownership.verified_by_repr = verified_by.get_username()
    ownership.orphaned_since, ownership.orphan_reason = None, ""
    ownership.save()
    audit.event_record(
        actor=verified_by,
        action="ownership.verified",
        target=service,
        service_id=service.pk,
        before=before,
        after={"verified_at": moment.isoformat(), "owner": service.owner.slug},
    )
    catalog_cache.bump()  # the catalog filters and sorts by it
    return ownership


def _rolling_due() -> date:
    return timezone.localdate() + timedelta(days=settings.REVIEWS["DUE_DAYS"])


def _rolling_campaign(*, kind: str, team: Team | None, title: str, summary: str, questions: list[str]) -> Campaign:
    """The open rolling campaign of this kind (and team), made when first needed; its due date follows the latest
    item added to it, each item keeping its own."""
    due = _rolling_due()
    lookup = {"kind": kind, "status": Campaign.Status.OPEN, "team": team}
    campaign = Campaign.objects.select_for_update().filter(**lookup).first()
    if campaign is None:
        try:
            with transaction.atomic():
                campaign = Campaign.objects.create(
                    title=title, scope_summary=summary, questions=questions, due_on=due, **lookup
                )
                audit.event_record(
                    actor=None,
                    action="review.campaign_opened",
                    target=campaign,
                    after={"title": title, "rolling": True},
                )
                return campaign
        except IntegrityError:  # another transaction made it first
            campaign = Campaign.objects.select_for_update().get(**lookup)
    if campaign.due_on < due:
        campaign.due_on = due
        campaign.save(update_fields=["due_on"])
    return campaign


def _orphan_campaign() -> Campaign:
    """The rolling campaign that addresses orphaned services to the platform admins."""
    return _rolling_campaign(
        kind=Campaign.Kind.EVENT,
        team=None,
        title=ORPHAN_CAMPAIGN_TITLE,
        summary="Services whose team can no longer answer for them",
        questions=["ownership"],
    )


def _close_rolling_if_done(campaign: Campaign) -> None:
    """A rolling campaign whose every item is answered closes, so that the next period starts a fresh one."""
    if campaign.kind == Campaign.Kind.MANUAL or campaign.items.filter(status=Item.Status.OPEN).exists():
        return
    Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.OPEN).update(
        status=Campaign.Status.CLOSED, closed_at=timezone.now()
    )


def verification_period_days(tier: int) -> int:
    reviews = settings.REVIEWS
    return int(reviews["TIER_VERIFICATION_DAYS"].get(tier, reviews["VERIFICATION_DAYS"]))


def periodic_reviews_open() -> int:
    """Open a review item for every service whose ownership verification (or, never verified, its registration) is
    older than its period, in its team's rolling campaign; a service with an open item anywhere gets none. Safe to
    run twice or at once (unique items; a team's campaign is made once). Returns how many items were opened."""
    due = (
        Service.objects.exclude(lifecycle__in=Service.RETIRING)
        .filter(selectors.verification_q("due"))
        .exclude(
            Exists(
                Item.objects.filter(
                    service=OuterRef("pk"), status=Item.Status.OPEN, campaign__status=Campaign.Status.OPEN
                )
            )
        )
        .values_list("pk", "owner_id")
    )
    per_team: dict[int, list[int]] = {}
    for service_id, owner_id in due:
        per_team.setdefault(owner_id, []).append(service_id)
    opened = 0
    for team in Team.objects.filter(pk__in=per_team).order_by("pk"):
        with transaction.atomic():
            campaign = _rolling_campaign(
                kind=Campaign.Kind.PERIODIC,
                team=team,
                title=f"{team.name}: periodic ownership verification",
                summary=f"Owner: {team.slug} · verification past its period",
                questions=list(DEFAULT_QUESTIONS),
            )
            due_on, now = _rolling_due(), timezone.now()
            made = Item.objects.bulk_create(
                [
                    Item(
                        campaign=campaign,
                        service_id=service_id,
                        team=team,
                        due_on=due_on,
                        reason="Ownership verification is past its period.",
                        created_at=now,
                    )
                    for service_id in per_team[team.pk]
                ],
                ignore_conflicts=True,  # a concurrent run added the same service to the same campaign
                batch_size=2000,
            )
            opened += len(made)
            audit.event_record(
                actor=None,
                action="review.items_opened",
                target=campaign,
                after={"services": len(per_team[team.pk]), "reason": "periodic verification"},
            )
    return opened


def services_orphan(*, services: list[Service], reason: str, actor: User | None) -> int:
    """Flag services orphaned and address a review item for each to the platform admins at once; idempotent (a
    service already flagged with an open admin item gets nothing new). Returns how many were flagged."""
    if not services:
        return 0
    now = timezone.now()
    campaign = _orphan_campaign()
    flagged = 0
    for service in services:
        ownership, _ = Ownership.objects.select_for_update().get_or_create(service=service)
        if ownership.orphaned_since is None:
            ownership.orphaned_since, ownership.orphan_reason = now, reason[:300]
            ownership.save(update_fields=["orphaned_since", "orphan_reason"])
            flagged += 1
            audit.event_record(
                actor=actor,
                action="ownership.orphaned",
                target=service,
                service_id=service.pk,
                after={"reason": reason},
            )
        item, created = Item.objects.get_or_create(
            campaign=campaign,
            service=service,
            defaults={
                "team_id": service.owner_id,
                "audience": Item.Audience.ADMINS,
                "reason": reason[:300],
                "due_on": campaign.due_on,
            },
        )
        if not created and item.status != Item.Status.OPEN:  # answered before, orphaned again
            item.status, item.reason, item.answered_at, item.answered_by = Item.Status.OPEN, reason[:300], None, None
            item.answer, item.outcome, item.due_on = {}, [], _rolling_due()
            item.save(update_fields=["status", "reason", "answered_at", "answered_by", "answer", "outcome", "due_on"])
    catalog_cache.bump()
    return flagged


def _lock_open_item(item: Item) -> Item:
    item = Item.objects.select_for_update().select_related("campaign", "service", "service__owner").get(pk=item.pk)
    if not item.campaign.is_open:
        raise Conflict(f"{item.campaign} is closed: it accepts no more answers.")
    if not item.is_open:
        raise Conflict(f"{item.service} has already been answered in {item.campaign}.")
    return item


def _answer_details(item: Item, answer: Answer, user: User, outcome: list[dict[str, str]]) -> None:
    changes = {name: value for name, value in answer.details.items() if name in DETAIL_FIELDS}
    unknown = sorted(set(answer.details) - set(DETAIL_FIELDS))
    if unknown:
        raise ValidationError({"details": [f"Only {', '.join(DETAIL_FIELDS)} can be corrected here."]})
    service = item.service
    changes = {name: value for name, value in changes.items() if getattr(service, name) != value}
    if not changes:
        return
    record = catalog_services.source_owner(service)
    if record is not None:
        # The descriptor owns these fields: writing them here would be undone by the next sync.
        for name, value in changes.items():
            outcome.append(
                {
                    "kind": "pending",
                    "text": f"Set {name} to {value!r} in {record.path} (catalog source “{record.source.name}”).",
                    "file": record.path,
                }
            )
        return
    catalog_services.service_update(service=service, updated_by=user, **changes)
    outcome.append({"kind": "done", "text": "Updated " + ", ".join(f"{k} to {v!r}" for k, v in changes.items()) + "."})


def _answer_ownership(item: Item, answer: Answer, user: User, outcome: list[dict[str, str]]) -> None:
    service = item.service
    if answer.ownership == "confirm":
        ownership_verify(service=service, verified_by=user)
        outcome.append({"kind": "done", "text": f"Ownership by {service.owner} verified."})
    elif answer.ownership == "handover":
        if answer.handover_to is None:
            raise ValidationError({"handover_to": ["Choose the team to hand the service over to."]})
        record = catalog_services.source_owner(service)
        if record is not None:
            outcome.append(
                {
                    "kind": "pending",
                    "text": f"Set spec.owner to {answer.handover_to.slug} in {record.path} "
                    f"(catalog source “{record.source.name}”); the next sync moves it.",
                    "file": record.path,
                }
            )
            return
        handover = handover_propose(
            service=service, to_team=answer.handover_to, proposed_by=user, note=answer.comment, item=item
        )
        if handover.status == Handover.Status.ACCEPTED:
            outcome.append({"kind": "done", "text": f"Transferred to {answer.handover_to} by a platform admin."})
        else:
            outcome.append(
                {"kind": "proposed", "text": f"Handover proposed to {answer.handover_to}; a lead there must accept it."}
            )
    elif answer.ownership == "not_ours":
        services_orphan(
            services=[service], reason=f"{service.owner} said it is not theirs ({user.get_username()})", actor=user
        )
        outcome.append({"kind": "done", "text": "Flagged orphaned; the platform admins are asked to find its owner."})
    else:
        raise ValidationError({"ownership": ["Answer confirm, handover or not_ours."]})


def _answer_runbooks(item: Item, user: User, outcome: list[dict[str, str]]) -> None:
    from techdocs import services as techdocs_services
    from techdocs.models import Runbook

    runbooks = list(Runbook.objects.filter(service=item.service).order_by("pk"))
    for runbook in runbooks:
        techdocs_services.runbook_mark_reviewed(runbook=runbook, reviewed_by=user)
    if runbooks:
        outcome.append({"kind": "done", "text": f"Marked {len(runbooks)} runbook(s) reviewed."})


def _answer_retire(item: Item, answer: Answer, user: User, outcome: list[dict[str, str]]) -> None:
    from deployments import decommission

    planned = answer.retire_on or timezone.localdate() + timedelta(days=30)
    reason = answer.retire_reason.strip() or answer.comment.strip()
    decommission.decommission_request(service=item.service, user=user, reason=reason, planned_for=planned)
    outcome.append({"kind": "done", "text": f"Decommission requested for {planned:%d %b %Y}."})


@transaction.atomic
def item_answer(*, item: Item, answered_by: User, answer: Answer) -> Item:
    """Answer one review item; each part of the answer acts through its own service function, in one transaction
    (a refused part refuses the whole answer, naming the field)."""
    item = _lock_open_item(item)
    if not permissions.can_answer(answered_by, item):
        who = "the platform admins" if item.audience == Item.Audience.ADMINS else f"{item.service.owner}'s leads"
        raise PermissionDenied(f"Only {who} (or a platform admin) may answer for {item.service}.")
    if len(answer.comment) > 5000:
        raise ValidationError({"comment": ["Keep the comment under 5,000 characters."]})
    if item.audience == Item.Audience.ADMINS and answer.ownership == "not_ours":
        raise ValidationError({"ownership": ["Confirm the owner, or hand the service to the team that owns it."]})
    outcome: list[dict[str, str]] = []
    campaign = item.campaign
    if campaign.asks("details") and answer.details:
        _answer_details(item, answer, answered_by, outcome)
    if campaign.asks("runbooks") and answer.runbooks_valid:
        _answer_runbooks(item, answered_by, outcome)
    if campaign.asks("retire") and answer.retire:
        _answer_retire(item, answer, answered_by, outcome)
    _answer_ownership(item, answer, answered_by, outcome)  # last: a handover moves the grants the others used
    item.status, item.answered_by, item.answered_at = Item.Status.ANSWERED, answered_by, timezone.now()
    item.answer, item.comment, item.outcome = answer.as_json(), answer.comment.strip(), outcome
    item.full_clean(exclude=["campaign", "service", "team"])
    item.save()
    audit.event_record(
        actor=answered_by,
        action="review.answered",
        target=item,
        service_id=item.service_id,
        after={"campaign": campaign.pk, "answer": item.answer, "comment": item.comment[:500]},
    )
    _close_rolling_if_done(campaign)
    return item


def items_confirm(*, items: list[Item], answered_by: User, comment: str = "") -> tuple[list[Item], dict[int, str]]:
    """ "All of these are still ours": confirm ownership of each item. Each item is its own answer (its own
    transaction), so one refused item leaves the others answered; returns the answered items and, per refused
    item id, why."""
    done: list[Item] = []
    refused: dict[int, str] = {}
    for item in items:
        try:
            done.append(item_answer(item=item, answered_by=answered_by, answer=Answer(comment=comment)))
        except (PermissionDenied, ValidationError, Conflict) as error:
            refused[item.pk] = " ".join(getattr(error, "messages", None) or [str(error)])
    return done, refused


@transaction.atomic
def handover_propose(
    *, service: Service, to_team: Team, proposed_by: User, note: str = "", item: Item | None = None
) -> Handover:
    """Propose moving a service to `to_team`; a lead there accepts it. A platform admin's proposal is carried out at
    once (admins may transfer directly)."""
    service = Service.objects.select_for_update().select_related("owner").get(pk=service.pk)
    if service.owner_id == to_team.pk:
        raise ValidationError({"handover_to": [f"{to_team} already owns {service}."]})
    if Handover.objects.filter(service=service, status=Handover.Status.PROPOSED).exists():
        raise Conflict(f"{service} already has a handover waiting for its receiving team.")
    handover = Handover(
        service=service, from_team=service.owner, to_team=to_team, proposed_by=proposed_by, note=note[:2000], item=item
    )
    handover.full_clean()
    handover.save()
    audit.event_record(
        actor=proposed_by,
        action="handover.proposed",
        target=handover,
        service_id=service.pk,
        after={"from": service.owner.slug, "to": to_team.slug, "note": note[:500]},
    )
    if proposed_by.is_staff:
        handover_accept(handover=handover, decided_by=proposed_by, note="Transferred directly by a platform admin.")
    return handover


@transaction.atomic
def handover_accept(*, handover: Handover, decided_by: User, note: str = "") -> Handover:
    """The receiving team takes the service: it is transferred through the catalog (grants move, audited) and its
    ownership counts as verified by the person who accepted."""
    handover = Handover.objects.select_for_update(of=("self",)).select_related("service", "to_team").get(pk=handover.pk)
    if handover.status != Handover.Status.PROPOSED:
        raise Conflict(f"This handover is already {handover.get_status_display().lower()}.")
    if not permissions.can_decide_handover(decided_by, handover):
        raise PermissionDenied(
            f"Only a lead of {handover.to_team} (or a platform admin) may accept {handover.service}."
        )
    service = handover.service
    if service.owner_id not in (handover.from_team_id, handover.to_team_id):
        raise Conflict(f"{service} has moved to {service.owner} since this handover was proposed.")
    if service.owner_id != handover.to_team_id:  # else a platform admin moved it meanwhile
        service = catalog_services.service_transfer(
            service=service, new_owner=handover.to_team, transferred_by=decided_by, note=note or handover.note
        )
    handover.status, handover.decided_by, handover.decided_at = Handover.Status.ACCEPTED, decided_by, timezone.now()
    handover.decision_note = note[:2000]
    handover.save()
    ownership_verify(service=service, verified_by=decided_by)
    audit.event_record(
        actor=decided_by, action="handover.accepted", target=handover, service_id=service.pk, after={"note": note[:500]}
    )
    return handover


@transaction.atomic
def handover_decline(*, handover: Handover, decided_by: User, note: str = "") -> Handover:
    """The receiving team refuses the service: it stays where it is, and the review item that proposed the handover
    (if its campaign is still open) is open again, since its question has no answer yet."""
    handover = (
        Handover.objects.select_for_update(of=("self",))
        .select_related("service", "to_team", "item")
        .get(pk=handover.pk)
    )
    if handover.status != Handover.Status.PROPOSED:
        raise Conflict(f"This handover is already {handover.get_status_display().lower()}.")
    if not permissions.can_decide_handover(decided_by, handover):
        raise PermissionDenied(
            f"Only a lead of {handover.to_team} (or a platform admin) may decline {handover.service}."
        )
    handover.status, handover.decided_by, handover.decided_at = Handover.Status.DECLINED, decided_by, timezone.now()
    handover.decision_note = note[:2000]
    handover.save()
    _reopen_item(handover, f"{handover.to_team} declined the handover" + (f": {note}" if note else "."))
    audit.event_record(
        actor=decided_by,
        action="handover.declined",
        target=handover,
        service_id=handover.service_id,
        after={"note": note[:500]},
    )
    return handover


@transaction.atomic
def handover_withdraw(*, handover: Handover, withdrawn_by: User) -> Handover:
    handover = Handover.objects.select_for_update(of=("self",)).select_related("service", "item").get(pk=handover.pk)
    if handover.status != Handover.Status.PROPOSED:
        raise Conflict(f"This handover is already {handover.get_status_display().lower()}.")
    if not permissions.can_withdraw_handover(withdrawn_by, handover):
        raise PermissionDenied("Only the team giving the service away (or a platform admin) may withdraw it.")
    handover.status, handover.decided_by, handover.decided_at = Handover.Status.WITHDRAWN, withdrawn_by, timezone.now()
    handover.save()
    _reopen_item(handover, "The handover was withdrawn.")
    audit.event_record(actor=withdrawn_by, action="handover.withdrawn", target=handover, service_id=handover.service_id)
    return handover


def _reopen_item(handover: Handover, why: str) -> None:
    item = handover.item
    if item is None or item.status != Item.Status.ANSWERED or not item.campaign.is_open:
        return
    item.status, item.answered_at, item.answered_by = Item.Status.OPEN, None, None
    item.outcome = [*item.outcome, {"kind": "reopened", "text": why[:300]}]
    item.save(update_fields=["status", "answered_at", "answered_by", "outcome"])
