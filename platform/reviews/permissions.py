"""Who may do what in ownership reviews, shared by the pages and the API.

An item is answered by a lead or maintainer of the service's owning team (as it is when answering, not when the item
was opened) or by a platform admin; an item addressed to the platform admins (an orphaned service) only by them. A
handover is accepted or declined by a lead of the receiving team or a platform admin. Campaigns are opened and
closed by platform admins.
"""

from django.contrib.auth.models import AnonymousUser, User

from reviews.models import Handover, Item
from teams.models import Membership

ANSWERING_ROLES = (Membership.Role.LEAD, Membership.Role.MAINTAINER)


def _active(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_active)


def answering_team_ids(user: User | AnonymousUser) -> set[int]:
    """The teams whose review items `user` may answer (one query; pages ask it once, not once per item)."""
    if not _active(user):
        return set()
    memberships = Membership.objects.filter(user_id=user.pk, role__in=ANSWERING_ROLES)  # type: ignore[misc]
    return set(memberships.values_list("team_id", flat=True))


def lead_team_ids(user: User | AnonymousUser) -> set[int]:
    if not _active(user):
        return set()
    memberships = Membership.objects.filter(user_id=user.pk, role=Membership.Role.LEAD)  # type: ignore[misc]
    return set(memberships.values_list("team_id", flat=True))


def can_answer(user: User | AnonymousUser, item: Item, *, team_ids: set[int] | None = None) -> bool:
    if not _active(user):
        return False
    if user.is_staff:
        return True
    if item.audience == Item.Audience.ADMINS:
        return False
    teams = answering_team_ids(user) if team_ids is None else team_ids
    return item.service.owner_id in teams


def can_manage_campaigns(user: User | AnonymousUser) -> bool:
    return _active(user) and bool(user.is_staff)


def can_decide_handover(user: User | AnonymousUser, handover: Handover) -> bool:
    if not _active(user):
        return False
    return bool(user.is_staff) or handover.to_team_id in lead_team_ids(user)


def can_withdraw_handover(user: User | AnonymousUser, handover: Handover) -> bool:
    """The proposer, the leads and maintainers of the team giving the service away, and platform admins."""
    if not _active(user):
        return False
    if user.is_staff or handover.proposed_by_id == user.pk:
        return True
    return handover.from_team_id is not None and handover.from_team_id in answering_team_ids(user)
