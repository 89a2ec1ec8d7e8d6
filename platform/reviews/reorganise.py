"""Reorganisations: many services moved in one audited operation, and teams merged. Platform admins only; each
service still moves through catalog.services.service_transfer, so its grants move and its history shows it."""

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from audit import services as audit
from catalog import services as catalog_services
from catalog.models import Api, Resource, Service, System
from reviews import services
from teams import services as team_services
from teams.models import Membership, Team

MAX_MOVE = 5000


def _refuse_unless_staff(user: User) -> None:
    if not (user.is_active and user.is_staff):
        raise PermissionDenied("Only platform admins reorganise teams.")


@transaction.atomic
def services_move(*, services_to_move: list[Service], to_team: Team, moved_by: User, reason: str) -> int:
    """Move many services to one team at once (a reorganisation: platform admins, no acceptance needed); one
    `reorganisation.services_moved` event names them all, beside each service's own transfer event."""
    _refuse_unless_staff(moved_by)
    if not reason.strip():
        raise ValidationError({"reason": ["Say why the services move: it stays on the record."]})
    if len(services_to_move) > MAX_MOVE:
        raise ValidationError({"services": [f"Move at most {MAX_MOVE:,} services at once."]})
    moving = [service for service in services_to_move if service.owner_id != to_team.pk]
    if not moving:
        raise ValidationError({"services": [f"{to_team} already owns every chosen service."]})
    blocked = [s.slug for s in moving if catalog_services.source_owner(s) is not None]
    if blocked:
        raise ValidationError(
            {"services": [f"Owned by a catalog source (change spec.owner in its file): {', '.join(blocked[:20])}."]}
        )
    for service in moving:
        catalog_services.service_transfer(service=service, new_owner=to_team, transferred_by=moved_by, note=reason)
    audit.event_record(
        actor=moved_by,
        action="reorganisation.services_moved",
        target=to_team,
        after={"to": to_team.slug, "services": [s.slug for s in moving][:1000], "reason": reason[:500]},
    )
    return len(moving)


@transaction.atomic
def team_merge(*, source: Team, target: Team, merged_by: User) -> int:
    """Merge `source` into `target`: its services, systems, APIs, resources, sub-teams and members move to `target`
    and `source` is deleted. Its services are flagged orphaned with a review item for the platform admins, who
    confirm who owns each now (a merge says where they went, not that anyone there agreed). Returns the services."""
    _refuse_unless_staff(merged_by)
    if source.pk == target.pk:
        raise ValidationError({"target": ["Merge a team into another one."]})
    if target.parent_id is not None:
        ancestor: Team | None = target
        seen: set[int] = set()
        while ancestor is not None and ancestor.pk not in seen:
            if ancestor.pk == source.pk:
                raise ValidationError({"target": [f"{target} is inside {source}; merge the other way round."]})
            seen.add(ancestor.pk)
            ancestor = ancestor.parent
    owned = list(Service.objects.filter(owner=source).select_related("owner"))
    blocked = [s.slug for s in owned if catalog_services.source_owner(s) is not None]
    if blocked:
        raise ValidationError(
            {
                "source": [
                    f"Catalog sources name {source.slug} as the owner of {', '.join(blocked[:20])}: change them first."
                ]
            }
        )
    for service in owned:
        catalog_services.service_transfer(
            service=service, new_owner=target, transferred_by=merged_by, note=f"{source} merged into {target}"
        )
    for system in System.objects.filter(owner=source):
        catalog_services.system_transfer(system=system, new_owner=target, transferred_by=merged_by)
    Api.objects.filter(owner=source).update(owner=target)
    Resource.objects.filter(owner=source).update(owner=target)
    Team.objects.filter(parent=source).update(parent=target)
    for membership in Membership.objects.filter(team=source).select_related("user"):
        existing = Membership.objects.filter(team=target, user=membership.user).first()
        if existing is None:
            team_services.membership_set(team=target, user=membership.user, role=membership.role, changed_by=merged_by)
        membership.user.groups.remove(source.group)
    moved = [Service.objects.select_related("owner").get(pk=s.pk) for s in owned]
    services.services_orphan(services=moved, reason=f"{source} was merged into {target}", actor=merged_by)
    audit.event_record(
        actor=merged_by,
        action="team.merged",
        target=target,
        before={"team": source.slug},
        after={"into": target.slug, "services": [s.slug for s in owned][:1000]},
    )
    group = source.group
    Membership.objects.filter(team=source).delete()
    source.delete()
    group.delete()
    return len(owned)
