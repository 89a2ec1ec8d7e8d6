"""Flag changes a require_approval policy held (flags.services.setting_change parks them): approving, rejecting.

Eligibility is governance's, so a flag change and a deployment held by the same policy wait for the same people:
anyone eligible for one of its requirements may answer (governance.approvals.eligible_for), never the requester; an
approval counts for every requirement its approver is eligible for. Once each requirement has its count the change
is applied as the requester asked, re-checked against the flag as it is then (a change made meanwhile may have made
it invalid: it then ends `failed`, saying why). One rejection with a reason ends it; so does its expiry (closed by
the beat's flag_changes_expire; an answer that comes too late is refused). Every answer locks the row first, so
two answers happen one after another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import event_record
from flags import services
from flags.models import FlagChange
from governance.models import approvers_text
from portal.errors import Conflict

MAX_REASON = 2000


def _locked(change_id: int) -> FlagChange:
    found = (
        FlagChange.objects.select_for_update(of=("self",))
        .select_related("flag__service", "environment", "requested_by")
        .filter(pk=change_id)
        .first()
    )
    if found is None:
        raise FlagChange.DoesNotExist(f"No flag change #{change_id}.")
    return found


def _close(change: FlagChange, status: str, reason: str) -> None:
    change.status, change.closed_at, change.closed_reason = status, timezone.now(), reason
    change.save(update_fields=["status", "closed_at", "closed_reason"])


def _still_open(change: FlagChange) -> None:
    if change.status == FlagChange.Status.OPEN and change.expires_at <= timezone.now():
        raise Conflict("This flag change has expired; nothing changed. Make the change again to ask anew.")
    if change.status != FlagChange.Status.OPEN:
        raise Conflict(f"This flag change is already {change.get_status_display().lower()}; nothing to answer.")


def _answer(change: FlagChange, user: User | AnonymousUser, verdict: str, reason: str) -> dict[str, object]:
    from governance import approvals

    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied("Sign in to answer a flag change.")
    if change.requested_by_id == user.pk:
        raise PermissionDenied("You asked for this change: someone else must approve or reject it.")
    who = approvals.person(user=user, owner_id=change.flag.service.owner_id)
    counts_for = approvals.eligible_for(change.requirements, who)
    if not counts_for:
        needs = "; ".join(approvers_text(r) for r in change.requirements)
        raise PermissionDenied(f"You are not among the approvers of this change: it needs {needs}.")
    if any(answer["user_id"] == user.pk for answer in change.answers):
        raise Conflict("You have already answered this flag change.")
    answer: dict[str, object] = {
        "username": who.username,
        "user_id": user.pk,
        "verdict": verdict,
        "reason": reason,
        "owner_roles": who.owner_roles,
        "platform_admin": who.platform_admin,
        "counts_for": counts_for,
        "at": timezone.now().isoformat(),
    }
    change.answers = [*change.answers, answer]
    change.save(update_fields=["answers"])
    return answer


def may_answer(change: FlagChange, user: User | AnonymousUser, who: Any = None) -> bool:
    """Whether `user` may approve or reject this change now (for its page); `who` is governance's Person for the
    user and the flag's owner, when the caller has read it once for many changes."""
    from governance import approvals

    if not change.is_open or not isinstance(user, User) or change.requested_by_id == user.pk:
        return False
    if any(answer["user_id"] == user.pk for answer in change.answers):
        return False
    who = who or approvals.person(user=user, owner_id=change.flag.service.owner_id)
    return bool(approvals.eligible_for(change.requirements, who))


@transaction.atomic
def flag_change_approve(*, change_id: int, user: User | AnonymousUser) -> FlagChange:
    """Approve; once every requirement has its count, the change is applied as the requester asked."""
    change = _locked(change_id)
    _still_open(change)
    answer = _answer(change, user, "approve", "")
    event_record(
        actor=user,
        action="flag_change.approved",
        target=change,
        after={"flag": change.flag.key, "environment": change.environment.slug, "by": answer["username"]},
        service_id=change.flag.service_id,
    )
    rows = change.progress()
    if not all(row["met"] for row in rows):
        return change
    approved_by = ", ".join(sorted({name for row in rows for name in row["by"]}))
    note = f"approved by {approved_by}" + (f": {change.note}" if change.note else "")
    start = change.proposed.get("rollout_start")
    try:
        with transaction.atomic():
            if start is not None:  # a progressive rollout whose start was held: it starts now, judged already
                from flags import rollouts

                rollouts.rollout_start(
                    actor=change.requested_by,
                    flag=change.flag,
                    environment=change.environment,
                    judged=False,
                    **start,
                )
            else:
                services.setting_update(
                    actor=change.requested_by,
                    flag=change.flag,
                    environment=change.environment,
                    note=note[:200],
                    **change.proposed,
                )
                from flags import rollouts

                rollouts.rollouts_stop(
                    flag=change.flag,
                    environment=change.environment,
                    actor=user,
                    reason=f"Stopped: a change approved by {approved_by} set the flag by hand.",
                )
    except (ValidationError, Conflict) as error:
        why = error.message if isinstance(error, Conflict) else " ".join(error.messages)
        _close(change, FlagChange.Status.FAILED, f"Approved by {approved_by}, but it no longer fits the flag: {why}")
    else:
        _close(change, FlagChange.Status.APPLIED, f"Approved by {approved_by}; applied.")
    return change


@transaction.atomic
def flag_change_reject(*, change_id: int, user: User | AnonymousUser, reason: str) -> FlagChange:
    """Reject with a reason: nothing changes, and the requester reads why on the flag's page."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ["Say why you reject it: the requester reads this on the flag's page."]})
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise ValidationError({"reason": [f"Keep the reason under {MAX_REASON} characters of plain text."]})
    change = _locked(change_id)
    _still_open(change)
    answer = _answer(change, user, "reject", reason)
    _close(change, FlagChange.Status.REJECTED, f"Rejected by {answer['username']}: {reason}")
    event_record(
        actor=user,
        action="flag_change.rejected",
        target=change,
        after={
            "flag": change.flag.key,
            "environment": change.environment.slug,
            "by": answer["username"],
            "reason": reason,
        },
        service_id=change.flag.service_id,
    )
    return change


def flag_changes_expire() -> int:
    """Close every open flag change past its time (beat): nothing changes, and the audit log and the flag's page say
    it expired. Each is locked and re-read first, so an approval that got in just before wins."""
    expired = 0
    for change_id in FlagChange.objects.filter(
        status=FlagChange.Status.OPEN, expires_at__lte=timezone.now()
    ).values_list("pk", flat=True):
        with transaction.atomic():
            change = _locked(change_id)
            if change.status != FlagChange.Status.OPEN or change.expires_at > timezone.now():
                continue
            approvals = sum(1 for answer in change.answers if answer["verdict"] == "approve")
            _close(change, FlagChange.Status.EXPIRED, f"Expired with {approvals} approval(s); nothing changed.")
            event_record(
                actor=None,
                action="flag_change.expired",
                target=change,
                after={"flag": change.flag.key, "environment": change.environment.slug, "approvals": approvals},
                service_id=change.flag.service_id,
            )
            expired += 1
    return expired


def waiting_for(user: User, memberships: Callable[[], list[tuple[int, str, str]]]) -> list[Any]:
    """The open flag changes `user` may answer, for governance's approvals inbox and its count (registered in
    flags/apps.py). One query when none is open; `memberships` reads who they are once, when needed."""
    from django.urls import reverse

    from governance import approvals
    from governance.selectors import Waiting

    found = list(
        FlagChange.objects.filter(status=FlagChange.Status.OPEN, expires_at__gt=timezone.now())
        .exclude(requested_by=user)
        .select_related("flag__service", "environment", "requested_by")
        .order_by("expires_at", "pk")
    )
    waiting = []
    for change in found:
        if any(answer["user_id"] == user.pk for answer in change.answers):
            continue
        rows, owner_id = memberships(), change.flag.service.owner_id
        who = approvals.Person(
            username=user.get_username(),
            owner_roles=[role for team_id, _, role in rows if team_id == owner_id],
            teams=[slug for _, slug, _ in rows],
            platform_admin=bool(user.is_staff),
        )
        if not approvals.eligible_for(change.requirements, who):
            continue
        flag = change.flag
        waiting.append(
            Waiting(
                what=f"Feature flag {flag.key} of {flag.service.slug} in {change.environment.name}",
                url=reverse("flags:flag-detail", args=[flag.service.slug, flag.key]) + f"#change-{change.pk}",
                asked_by=change.requested_by.get_username() if change.requested_by else "",
                needs="; ".join(approvers_text(requirement) for requirement in change.requirements),
                expires_at=change.expires_at,
            )
        )
    return waiting
