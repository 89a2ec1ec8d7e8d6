from typing import Any

from django.core.exceptions import PermissionDenied
from rest_framework import viewsets
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated

from portal.api import LookupMixin, StaffWritePermission
from teams import selectors, services
from teams.api.serializers import MembershipSerializer, TeamSerializer
from teams.models import Membership, Team
from teams.permissions import team_can_manage


class TeamManagerPermission(BasePermission):
    """Team leads and maintainers (and staff) may change their team; anyone signed in may read it."""

    def has_object_permission(self, request: Any, view: Any, obj: Team) -> bool:
        return request.method in SAFE_METHODS or team_can_manage(request.user, obj)


class TeamViewSet(LookupMixin, viewsets.ModelViewSet):
    """Teams. Creating one is for platform admins; its leads and maintainers edit it."""

    serializer_class = TeamSerializer
    lookup_field = "slug"
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    filterset_fields = ["parent__slug"]

    def get_permissions(self) -> list[BasePermission]:
        if self.action == "create":
            return [IsAuthenticated(), StaffWritePermission()]
        return [IsAuthenticated(), TeamManagerPermission()]

    def get_queryset(self) -> Any:
        return selectors.team_list_visible(user=self.request.user).order_by("name")

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.team_create(created_by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        data = {k: v for k, v in serializer.validated_data.items() if k != "slug"}
        serializer.instance = services.team_update(team=serializer.instance, updated_by=self.request.user, **data)


class MembershipViewSet(viewsets.ModelViewSet):
    """Who is in which team. Posting an existing member changes their role."""

    serializer_class = MembershipSerializer
    filterset_fields = ["team__slug", "user__username", "role"]
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        return Membership.objects.select_related("team", "user").order_by("team__name", "user__username")

    def perform_create(self, serializer: Any) -> None:
        team = serializer.validated_data["team"]
        if not team_can_manage(self.request.user, team):
            raise PermissionDenied(f"Only {team}'s leads and maintainers can change its members.")
        serializer.instance = services.membership_set(changed_by=self.request.user, **serializer.validated_data)

    def perform_destroy(self, instance: Membership) -> None:
        if not team_can_manage(self.request.user, instance.team):
            raise PermissionDenied(f"Only {instance.team}'s leads and maintainers can change its members.")
        services.membership_remove(membership=instance, removed_by=self.request.user)
