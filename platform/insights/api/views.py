"""DORA figures over the API: anyone signed in reads them."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from insights import bands, selectors
from insights.api.serializers import DoraSerializer
from insights.forms import InsightsForm

PARAMETERS = [
    OpenApiParameter("scope", str, description="org (the default), team:<slug>, system:<slug> or service:<slug>."),
    OpenApiParameter(
        "window", str, enum=["7d", "30d", "90d", "365d"], description="The last N whole days; 30d by default."
    ),
    OpenApiParameter("since", OpenApiTypes.DATE, description="A range's first day (with until; not with window)."),
    OpenApiParameter("until", OpenApiTypes.DATE, description="A range's last day, inclusive."),
    OpenApiParameter("environment", str, description="An environment's slug; by default the protected ones."),
    OpenApiParameter("tz", str, description="The IANA time zone days are counted in; the portal's by default."),
]


def dora_document(question: Any) -> dict[str, Any]:
    scope, window, environments = question.scope, question.window, question.environments
    report = selectors.dora_report(scope=scope, window=window, environments=environments, breakdown=False)
    figures, weekly = report.figures, report.weekly
    marks = figures.bands
    return {
        "scope": {"kind": scope.kind, "slug": scope.slug, "name": scope.name},
        "window": {
            "first_day": window.first_day,
            "last_day": window.last_day,
            "days": window.days,
            "time_zone": window.zone.key,
        },
        "environments": [e.slug for e in environments],
        "band_table": bands.table_name(),
        "deployments": figures.deployments,
        "successes": figures.successes,
        "failures": figures.failures,
        "rework": figures.rework,
        "deployment_frequency": {
            "per_day": figures.per_day,
            "per_week": figures.per_week,
            "share_of_days": figures.share_of_days,
            "band": marks["deployment_frequency"].key,
        },
        "lead_time": {
            "median_seconds": figures.lead_median,
            "p90_seconds": figures.lead_p90,
            "measured": figures.leads,
            "band": marks["lead_time"].key,
        },
        "change_fail_rate": {"value": figures.change_fail_rate, "band": marks["change_fail_rate"].key},
        "recovery_time": {
            "median_seconds": figures.recovery_median,
            "p90_seconds": figures.recovery_p90,
            "recovered": figures.recovered,
            "not_recovered": figures.unrecovered,
            "band": marks["recovery_time"].key,
        },
        "rework_rate": {"value": figures.rework_rate, "band": None},
        "weekly": [
            {
                "week_start": monday,
                "days": week.days,
                "deployments": week.deployments,
                "successes": week.successes,
                "failures": week.failures,
                "rework": week.rework,
                "change_fail_rate": week.change_fail_rate,
                "rework_rate": week.rework_rate,
                "recovery_median_seconds": week.recovery_median,
                "lead_time_median_seconds": week.lead_median,
            }
            for monday, week in weekly
        ],
    }


class DoraView(APIView):
    """The DORA figures of the organisation, a team, a system or a service over a window, with weekly points."""

    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=PARAMETERS, responses={200: DoraSerializer}, operation_id="insights_dora")
    def get(self, request: Request) -> Response:
        form = InsightsForm(request.query_params)
        if not form.is_valid():
            errors = form.errors.get_json_data()
            raise exceptions.ValidationError(
                {
                    ("non_field_errors" if name == "__all__" else name): [e["message"] for e in messages]
                    for name, messages in errors.items()
                }
            )
        return Response(DoraSerializer(dora_document(form.question())).data)
