"""Who may change a service's runbooks and ADRs: whoever may change the service. Shared by pages and API."""

from typing import Any

from django.core.exceptions import PermissionDenied

from catalog.models import Service
from catalog.permissions import user_can


def docs_require_change(*, user: Any, service: Service) -> None:
    """Raise PermissionDenied (403 on pages and API alike) unless `user` may change `service`'s docs."""
    if not user_can(user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can change {service}'s docs.")
