"""Filters of the scorecards API lists, documented in the schema and validated."""

import django_filters

from scorecards.models import Score, ScoreDay


class ScoreFilterSet(django_filters.FilterSet):
    scorecard = django_filters.CharFilter(field_name="scorecard__name", help_text="The scorecard's name.")
    service = django_filters.CharFilter(field_name="service__slug", help_text="The service's slug.")
    team = django_filters.CharFilter(field_name="service__owner__slug", help_text="The owning team's slug.")
    level = django_filters.CharFilter(help_text="A level's name; empty for services at no level.")
    rank = django_filters.NumberFilter(min_value=0, max_value=100, help_text="0 for no level, 1 for the first...")

    class Meta:
        model = Score
        fields = ["scorecard", "service", "team", "level", "rank"]


class ScoreDayFilterSet(django_filters.FilterSet):
    scorecard = django_filters.CharFilter(field_name="scorecard__name", help_text="The scorecard's name.")
    service = django_filters.CharFilter(field_name="service__slug", help_text="The service's slug.")
    team = django_filters.CharFilter(field_name="service__owner__slug", help_text="The owning team's slug.")
    since = django_filters.DateFilter(field_name="day", lookup_expr="gte", help_text="From this day (YYYY-MM-DD).")
    until = django_filters.DateFilter(field_name="day", lookup_expr="lte", help_text="Up to this day (YYYY-MM-DD).")

    class Meta:
        model = ScoreDay
        fields = ["scorecard", "service", "team", "since", "until"]
