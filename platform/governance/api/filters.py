"""Filters of the governance API lists, documented in the schema and validated."""

import django_filters
from django.db.models import QuerySet

from governance.models import ApprovalRequest, Decision, Verdict


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


class ApprovalRequestFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ApprovalRequest.Status.choices)
    kind = django_filters.ChoiceFilter(choices=ApprovalRequest.Kind.choices)
    service = django_filters.CharFilter(field_name="deployment__service__slug", help_text="Only this service's.")
    deployment = django_filters.NumberFilter(
        field_name="deployment_id", min_value=1, max_value=2**63 - 1, help_text="This deployment's requests."
    )
    waiting_for_me = django_filters.BooleanFilter(
        method="filter_waiting_for_me", help_text="Only open requests the caller may answer now (true)."
    )

    class Meta:
        model = ApprovalRequest
        fields = ["status", "kind", "service", "deployment", "waiting_for_me"]

    def filter_waiting_for_me(self, queryset: QuerySet[ApprovalRequest], name: str, value: bool | None) -> QuerySet:
        if not value:
            return queryset
        from governance import selectors

        waiting = selectors.approval_inbox(user=self.request.user, recent=0)["waiting"]
        return queryset.filter(pk__in=[request.pk for request in waiting])
