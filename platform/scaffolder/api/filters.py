"""Filters of the scaffolder API lists."""

import django_filters

from scaffolder.models import GoldenPathUpdate


class GoldenPathUpdateFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(
        field_name="service__slug", help_text="Only the updates of this service (slug)."
    )

    class Meta:
        model = GoldenPathUpdate
        fields = ["service", "status"]
