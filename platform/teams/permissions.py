"""Who may manage a team: staff, and the team's leads and maintainers."""

from django.contrib.auth.models import AnonymousUser, User

from teams.models import Membership, Team

MANAGER_ROLES = (Membership.Role.LEAD, Membership.Role.MAINTAINER)


def team_can_manage(user: User | AnonymousUser, team: Team) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    return Membership.objects.filter(team=team, user=user, role__in=MANAGER_ROLES).exists()


def user_team_ids(user: User | AnonymousUser) -> set[int]:
    """The teams the user belongs to (every team for staff is decided by the caller, not here)."""
    if not user.is_authenticated:
        return set()
    return set(Membership.objects.filter(user=user).values_list("team_id", flat=True))
