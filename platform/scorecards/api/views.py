"""Scorecards API, read-only for everyone signed in (scorecards change in the editor or through scorecard files):
the scorecards, each service's current scores, and the daily history."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from portal.api import LookupMixin
from scorecards import selectors, services
from scorecards.api.filters import ScoreDayFilterSet, ScoreFilterSet
from scorecards.api.serializers import (
    InitiativeSerializer,
    ScorecardSerializer,
    ScoreDaySerializer,
    ScoreSerializer,
)
from scorecards.models import Score, ScoreDay


class ScorecardViewSet(LookupMixin, viewsets.ReadOnlyModelViewSet):
    """The scorecards, with their levels and rules."""

    serializer_class = ScorecardSerializer
    lookup_field = "name"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.scorecard_list().order_by("name")


class ScoreViewSet(viewsets.ReadOnlyModelViewSet):
    """Each service's current score on each scorecard that scores it, with the rules it fails and how to fix them."""

    serializer_class = ScoreSerializer
    filterset_class = ScoreFilterSet

    def get_queryset(self):  # type: ignore[no-untyped-def]
        scores = Score.objects.select_related("scorecard", "service", "service__owner")
        return scores.order_by("scorecard__name", "service__slug")


class ScoreDayViewSet(viewsets.ReadOnlyModelViewSet):
    """The level each service held on each scorecard, day by day: the data behind the trend charts."""

    serializer_class = ScoreDaySerializer
    filterset_class = ScoreDayFilterSet

    def get_queryset(self):  # type: ignore[no-untyped-def]
        days = ScoreDay.objects.select_related("scorecard", "service")
        return days.order_by("-day", "scorecard__name", "service__slug")


class IsAdminForWrites(BasePermission):
    """Reads for everyone signed in; writes for platform admins."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.method in SAFE_METHODS or request.user.is_staff)


class InitiativeViewSet(LookupMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Initiatives with their progress per team; platform admins start them and may end them early."""

    serializer_class = InitiativeSerializer
    lookup_field = "name"
    permission_classes = [IsAuthenticated, IsAdminForWrites]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.initiative_list().order_by("deadline", "name")

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = services.initiative_create(user=self.request.user, **data)

    @extend_schema(request=None, responses={200: InitiativeSerializer})
    @action(detail=True, methods=["post"])
    def end(self, request: Request, name: str | None = None) -> Response:
        """End the initiative now and write its report of who made it (ending twice changes nothing)."""
        initiative = services.initiative_end(initiative=self.get_object(), user=request.user)
        return Response(InitiativeSerializer(initiative).data)
