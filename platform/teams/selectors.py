"""Reads for teams: every signed-in user may see every team and who is in it."""

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Q, QuerySet

from teams.models import Membership, Team


def team_list_visible(*, user: User | AnonymousUser) -> QuerySet[Team]:
    return Team.objects.select_related("parent").annotate(
        member_count=Count("memberships", distinct=True),
        service_count=Count("services", distinct=True, filter=~Q(services__lifecycle="decommissioned")),
    )


def team_choices_for(*, user: User | AnonymousUser) -> QuerySet[Team]:
    """The teams a user may make an owner: the ones they belong to, or every team for staff."""
    if not user.is_authenticated:
        return Team.objects.none()
    if user.is_staff:
        return Team.objects.all()
    return Team.objects.filter(memberships__user_id=user.pk).distinct()


def membership_list(*, team: Team) -> QuerySet[Membership]:
    return team.memberships.select_related("user").order_by("role", "user__username")
