"""Object permissions for the catalog, shared by the HTML views and the API.

Ownership is a set of guardian grants to the owning team's group; staff (platform admins) may do everything.
"""

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Model, Q
from guardian.core import ObjectPermissionChecker
from rest_framework.permissions import SAFE_METHODS, BasePermission

SERVICE_OWNER_PERMS = ["catalog.change_service", "catalog.deploy_service", "catalog.decommission_service"]
SYSTEM_OWNER_PERMS = ["catalog.change_system", "catalog.deploy_system", "catalog.decommission_system"]

# API action → the object permission it needs. Reads need none beyond being signed in.
SERVICE_PERMS = {
    "update": "catalog.change_service",
    "partial_update": "catalog.change_service",
    "destroy": "catalog.delete_service",
    "transfer": "catalog.change_service",
}
SYSTEM_PERMS = {
    "update": "catalog.change_system",
    "partial_update": "catalog.change_system",
    "destroy": "catalog.delete_system",
    "transfer": "catalog.change_system",
}


def user_can(
    user: User | AnonymousUser, perm: str, obj: Model, *, checker: ObjectPermissionChecker | None = None
) -> bool:
    """Staff, a model-wide grant, or a guardian grant on this one object (usually via the owning team's group).

    Pass one `checker` (see `checker_for`) when a page asks several questions about the same object: it reads the
    object's grants once instead of once per question.
    """
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or user.has_perm(perm):
        return True
    return checker.has_perm(perm, obj) if checker is not None else bool(user.has_perm(perm, obj))


def perms_on(user: User | AnonymousUser, obj: Model) -> frozenset[str]:
    """The permissions ("catalog.change_service") `user_can` grants `user` on `obj`, read in one query: model-wide
    grants (the user's and their groups') and guardian grants on the object (the user's and their groups'). A page
    that asks several questions about one object asks this once, instead of four queries through Django and guardian.
    Staff get every permission of the object's model, as `user_can` gives them."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import GroupObjectPermission, UserObjectPermission

    if not user.is_authenticated or not user.is_active:
        return frozenset()
    content_type = ContentType.objects.get_for_model(obj)  # cached by Django after the first call
    label = content_type.app_label
    everything = Permission.objects.filter(content_type=content_type)
    if user.is_staff or user.is_superuser:
        return frozenset(f"{label}.{codename}" for codename in everything.values_list("codename", flat=True))
    object_pk = str(obj.pk)
    # Without Permission's default ordering: SQLite refuses ORDER BY inside the parts of a UNION.
    model_wide = everything.filter(Q(user=user) | Q(group__user=user)).order_by().values_list("codename")
    own = UserObjectPermission.objects.filter(user=user, content_type=content_type, object_pk=object_pk)
    groups = GroupObjectPermission.objects.filter(group__user=user, content_type=content_type, object_pk=object_pk)
    codenames = model_wide.union(
        own.order_by().values_list("permission__codename"),
        groups.order_by().values_list("permission__codename"),
        all=True,
    )
    return frozenset(f"{label}.{codename}" for (codename,) in codenames)


def checker_for(user: User | AnonymousUser) -> ObjectPermissionChecker | None:
    return ObjectPermissionChecker(user) if user.is_authenticated else None


class ObjectActionPermission(BasePermission):
    """Reads are open to signed-in users; every other action needs the object permission in `view.object_perms`."""

    def has_object_permission(self, request: Any, view: Any, obj: Model) -> bool:
        if request.method in SAFE_METHODS and view.action not in view.object_perms:
            return True
        perm = view.object_perms.get(view.action)
        return perm is not None and user_can(request.user, perm, obj)
