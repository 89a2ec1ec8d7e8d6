"""Deployment filters, shared by the board and the API: service, environment, state and owning team; and the
API's filters of releases, placements and decommissions.

Every filter checks its value before it reaches a query, against choices held in memory, a slug pattern, or as
text (a form CharField refuses NUL characters): a value PostgreSQL cannot even compare is a form error on the page
and a 400 from the API, never a database error.
"""

import django_filters
from django import forms
from django.core.validators import RegexValidator

from deployments.models import Decommission, DecommissionState, Deployment, Environment, Placement, Release, State
from teams.models import Team

slug_value = RegexValidator(
    r"\A[a-z0-9][a-z0-9-]{0,99}\Z", "A service is named by its slug: lowercase letters, digits, dashes."
)


SERVICE_HELP = "Only this service's (its slug)."
ENVIRONMENT_HELP = "Only this environment's (its slug)."


def environment_choices() -> list[tuple[str, str]]:
    return list(Environment.objects.order_by("order", "name").values_list("slug", "name"))


def team_choices() -> list[tuple[str, str]]:
    return list(Team.objects.order_by("name").values_list("slug", "name"))


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

    class Meta:
        model = Deployment
        fields = ["service", "environment", "state", "team"]


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
