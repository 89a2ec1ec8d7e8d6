"""Deployment filters, shared by the board and the API: service, environment, state, owning team and a range of days
(from, to); and the API's filters of releases, placements and decommissions.

Every filter checks its value before it reaches a query, against choices held in memory, a slug pattern, or as
text (a form CharField refuses NUL characters): a value PostgreSQL cannot even compare is a form error on the page
and a 400 from the API, never a database error.
"""

from datetime import date
from typing import Any

import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from django.db.models.functions import Coalesce

from deployments.models import Decommission, DecommissionState, Deployment, Environment, Placement, Release, State
from portal.filters import DayFilter, day_end, day_range_check, day_start
from teams.models import Team

MOMENT = Coalesce("finished_at", "started_at", "created_at")  # served by the deployment_env_moment index

slug_value = RegexValidator(
    r"\A[a-z0-9][a-z0-9-]{0,99}\Z", "A service is named by its slug: lowercase letters, digits, dashes."
)


SERVICE_HELP = "Only this service's (its slug)."
ENVIRONMENT_HELP = "Only this environment's (its slug)."


def environment_choices() -> list[tuple[str, str]]:
    return list(Environment.objects.order_by("order", "name").values_list("slug", "name"))


def team_choices() -> list[tuple[str, str]]:
    return list(Team.objects.order_by("name").values_list("slug", "name"))


class DeploymentFilterForm(forms.Form):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        day_range_check(cleaned, self)
        return cleaned


class DeploymentFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(
        field_name="service__slug",
        label="Service",
        help_text=SERVICE_HELP,
        validators=[slug_value],
        max_length=100,
        widget=forms.TextInput(attrs={"list": "service-slugs", "placeholder": "Any service", "autocomplete": "off"}),
    )
    environment = django_filters.ChoiceFilter(
        field_name="environment__slug",
        choices=environment_choices,
        label="Environment",
        empty_label="Any environment",
        help_text=ENVIRONMENT_HELP,
    )
    state = django_filters.ChoiceFilter(choices=State.choices, empty_label="Any state")
    team = django_filters.ChoiceFilter(
        field_name="service__owner__slug", choices=team_choices, label="Team", empty_label="Any team"
    )

    # What Insights counts a deployment at: when it ended (or began, if it has not ended), in the portal's days.
    since = DayFilter(method="filter_since", label="From", help_text="Only those that ended on or after this day.")
    until = DayFilter(method="filter_until", label="To", help_text="Only those that ended on or before this day.")

    class Meta:
        model = Deployment
        fields = ["service", "environment", "state", "team", "since", "until"]
        form = DeploymentFilterForm

    def filter_since(self, queryset: QuerySet[Deployment], name: str, value: date) -> QuerySet[Deployment]:
        return queryset.alias(moment=MOMENT).filter(moment__gte=day_start(value))

    def filter_until(self, queryset: QuerySet[Deployment], name: str, value: date) -> QuerySet[Deployment]:
        return queryset.alias(moment=MOMENT).filter(moment__lt=day_end(value))


class ReleaseFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug", help_text=SERVICE_HELP, max_length=100)

    class Meta:
        model = Release
        fields = ["service"]


class PlacementFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug", help_text=SERVICE_HELP, max_length=100)
    environment = django_filters.CharFilter(field_name="environment__slug", help_text=ENVIRONMENT_HELP, max_length=50)

    class Meta:
        model = Placement
        fields = ["service", "environment"]


class DecommissionFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug", help_text=SERVICE_HELP, max_length=100)
    state = django_filters.ChoiceFilter(choices=DecommissionState.choices, empty_label="Any state")

    class Meta:
        model = Decommission
        fields = ["service", "state"]
