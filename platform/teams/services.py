"""Writes for teams and memberships; group membership always follows Membership rows."""

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils.text import slugify

from audit import services as audit
from teams.models import Membership, Team
from teams.signals import membership_lost

TEAM_FIELDS = ["name", "slug", "description", "chat_channel", "on_call_url", "parent"]


def _group_name(slug: str) -> str:
    return f"team:{slug}"


@transaction.atomic
def team_create(
    *,
    name: str,
    created_by: User | None,
    slug: str = "",
    description: str = "",
    chat_channel: str = "",
    on_call_url: str = "",
    parent: Team | None = None,
) -> Team:
    """Create a team and the Django group that will hold its object permissions."""
    slug = slug or slugify(name)
    team = Team(
        name=name, slug=slug, description=description, chat_channel=chat_channel, on_call_url=on_call_url, parent=parent
    )
    team.group = Group(name=_group_name(slug))
    team.full_clean(exclude=["group"])
    team.group.save()
    team.save()
    audit.event_record(
        actor=created_by, action="team.created", target=team, after=audit.snapshot(team, fields=TEAM_FIELDS)
    )
    return team


@transaction.atomic
def team_update(*, team: Team, updated_by: User, **fields: object) -> Team:
    """Change a team's descriptive fields; the slug (and so the group) never changes here."""
    before = audit.snapshot(team, fields=TEAM_FIELDS)
    for name, value in fields.items():
        if name not in TEAM_FIELDS or name == "slug":
            raise ValueError(f"team_update cannot change {name!r}")
        setattr(team, name, value)
    team.full_clean(exclude=["group"])
    team.save()
    after = audit.snapshot(team, fields=TEAM_FIELDS)
    if after != before:
        audit.event_record(actor=updated_by, action="team.updated", target=team, before=before, after=after)
    return team


@transaction.atomic
def membership_set(
    *, team: Team, user: User, role: str = Membership.Role.MEMBER, changed_by: User | None
) -> Membership:
    """Add a user to a team with a role, or change their role; the user joins the team's group."""
    membership, created = Membership.objects.get_or_create(team=team, user=user, defaults={"role": role})
    before = None if created else {"role": membership.role}
    lost_lead = not created and membership.role == Membership.Role.LEAD and role != Membership.Role.LEAD
    if not created and membership.role != role:
        membership.role = role
        membership.full_clean()
        membership.save(update_fields=["role"])
    elif created:
        membership.full_clean()
    user.groups.add(team.group)
    if created or before != {"role": role}:
        audit.event_record(
            actor=changed_by,
            action="membership.added" if created else "membership.changed",
            target=membership,
            before=before,
            after={"user": user.get_username(), "role": role},
        )
    if lost_lead:
        membership_lost.send(sender=Membership, team=team, actor=changed_by, lost_lead=True)
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, removed_by: User) -> None:
    """Remove a user from a team and from its group, so its object permissions stop applying at once."""
    membership.user.groups.remove(membership.team.group)
    audit.event_record(
        actor=removed_by,
        action="membership.removed",
        target=membership,
        before={"user": membership.user.get_username(), "role": membership.role},
    )
    membership.delete()
    membership_lost.send(
        sender=Membership, team=membership.team, actor=removed_by, lost_lead=membership.role == Membership.Role.LEAD
    )
