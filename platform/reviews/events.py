"""Event-triggered reviews: when a team can no longer answer for its services (its last lead left or was
deactivated, or nobody is left in it), they are flagged orphaned and the platform admins get a review item for each
at once. Connected when the app is ready; teams and accounts send or save, and never import this app."""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_save, pre_save

from catalog.models import Service
from reviews import services
from teams.models import Membership, Team
from teams.signals import membership_lost


def team_stewardship_check(*, team: Team, actor: Any, lost_lead: bool, why: str = "") -> int:
    """Orphan the team's services if it has no active member left, or lost its last active lead; returns how many
    services were newly flagged. A team that never had a lead is not orphaned by a member leaving."""
    active = Membership.objects.filter(team=team, user__is_active=True)
    if not active.exists():
        reason = f"{team} has no active member left"
    elif lost_lead and not active.filter(role=Membership.Role.LEAD).exists():
        reason = f"{team}'s last lead {why or 'left'}"
    else:
        return 0
    owned = list(Service.objects.filter(owner=team).exclude(lifecycle__in=Service.RETIRING).select_related("owner"))
    return services.services_orphan(services=owned, reason=reason, actor=actor)


def _membership_lost(sender: Any, *, team: Team, actor: Any, lost_lead: bool, **kwargs: Any) -> None:
    team_stewardship_check(team=team, actor=actor, lost_lead=lost_lead)


def _user_before_save(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Remember whether the user was active, so that only the change to inactive counts (not every later save)."""
    if instance.pk is None:
        instance._runway_was_active = False
        return
    instance._runway_was_active = sender.objects.filter(pk=instance.pk, is_active=True).exists()


def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created or instance.is_active or not getattr(instance, "_runway_was_active", False):
        return
    with transaction.atomic():
        for membership in Membership.objects.filter(user=instance).select_related("team"):
            team_stewardship_check(
                team=membership.team,
                actor=None,
                lost_lead=membership.role == Membership.Role.LEAD,
                why="was deactivated",
            )


def connect() -> None:
    user_model = get_user_model()
    membership_lost.connect(_membership_lost, dispatch_uid="reviews-membership-lost")
    pre_save.connect(_user_before_save, sender=user_model, dispatch_uid="reviews-user-before-save")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="reviews-user-saved")
