"""Filters of the deployments API lists: documented in the schema, and validated (an unknown state is a 400 naming
it) instead of read by hand from the query string."""

import django_filters

from deployments.models import Decommission, DecommissionState, Deployment, Placement, Release, State

SERVICE_HELP = "Only this service's (its slug)."
ENVIRONMENT_HELP = "Only this environment's (its slug)."


class ReleaseFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug", help_text=SERVICE_HELP)

    class Meta:
        model = Release
        fields = ["service"]


class DeploymentFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug", help_text=SERVICE_HELP)
    environment = django_filters.CharFilter(field_name="environment__slug", help_text=ENVIRONMENT_HELP)
    state = django_filters.ChoiceFilter(choices=State.choices)

    class Meta:
        model = Deployment
        fields = ["service", "environment", "state"]


class PlacementFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug", help_text=SERVICE_HELP)
    environment = django_filters.CharFilter(field_name="environment__slug", help_text=ENVIRONMENT_HELP)

    class Meta:
        model = Placement
        fields = ["service", "environment"]


class DecommissionFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug", help_text=SERVICE_HELP)
    state = django_filters.ChoiceFilter(choices=DecommissionState.choices)

    class Meta:
        model = Decommission
        fields = ["service", "state"]
