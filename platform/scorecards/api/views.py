"""Scorecards API, read-only for everyone signed in (scorecards change in the editor or through scorecard files):
the scorecards, each service's current scores, and the daily history."""

from rest_framework import viewsets

from portal.api import LookupMixin
from scorecards import selectors
from scorecards.api.filters import ScoreDayFilterSet, ScoreFilterSet
from scorecards.api.serializers import ScorecardSerializer, ScoreDaySerializer, ScoreSerializer
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
