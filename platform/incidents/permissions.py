"""Who may change an incident: anyone signed in reads; the owners of an affected service, the commander and
platform admins write. Shared by the pages and the API."""

from django.contrib.auth.models import AnonymousUser, User

from catalog.permissions import user_can
from incidents.models import Incident


def incident_can_write(user: User | AnonymousUser, incident: Incident) -> bool:
    """The commander, a platform admin, or someone who may change one of the affected services (its owner team)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or (incident.commander_id is not None and incident.commander_id == user.pk):
        return True
    return any(user_can(user, "catalog.change_service", service) for service in incident.services.all())


def incident_can_roll_back(user: User | AnonymousUser, service: object) -> bool:
    """Rolling back goes through the deployments' own permission: deploy on the suspect's service."""
    return user_can(user, "catalog.deploy_service", service)  # type: ignore[arg-type]


def denied_message(incident: Incident) -> str:
    owners = sorted({service.owner.name for service in incident.services.all()})
    return (
        f"Only the commander, the owners of the affected services ({', '.join(owners) or 'none'}) and platform "
        "admins may change this incident."
    )
