"""Filters of the governance API lists, documented in the schema and validated."""

import django_filters

from governance.models import Decision, Verdict


class DecisionFilterSet(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service_slug", help_text="Only this service's (its slug).")
    deployment = django_filters.NumberFilter(
        field_name="deployment_id", min_value=1, max_value=2**63 - 1, help_text="The decision of this deployment."
    )
    verdict = django_filters.ChoiceFilter(choices=Verdict.choices)
    dry_run = django_filters.BooleanFilter(
        field_name="deployment", lookup_expr="isnull", help_text="Only dry runs (true) or only deployments (false)."
    )

    class Meta:
        model = Decision
        fields = ["service", "deployment", "verdict", "dry_run"]
