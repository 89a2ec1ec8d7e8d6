"""Insights pages: the organisation's DORA figures, a team's, a system's or a service's, and their CSV."""

import csv
from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from insights import bands, present, selectors
from insights.forms import InsightsForm, Question


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    return _page(request, selectors.Scope("org"))


@login_required
@require_GET
def scope_page(request: HttpRequest, slug: str, kind: str) -> HttpResponse:
    try:
        scope = selectors.scope_find(f"{kind}:{slug}")
    except ValueError as error:
        raise Http404(str(error)) from None
    return _page(request, scope)


def _page(request: HttpRequest, scope: selectors.Scope) -> HttpResponse:
    form = InsightsForm(request.GET, scope=scope)
    context: dict[str, Any] = {"form": form, "scope": scope, "table": bands.table_name()}
    if not form.is_valid():
        return render(request, "insights/page.html", context, status=400)
    question = form.question()
    context.update(_figures_context(question, request.GET.urlencode()))
    query = request.GET.copy()
    query["scope"] = scope.key
    context["csv_query"] = query.urlencode()
    return render(request, "insights/page.html", context)


def _figures_context(question: Question, query: str) -> dict[str, Any]:
    scope, window, environments = question.scope, question.window, question.environments
    environment = present.board_environment(question.environment, environments)
    report = selectors.dora_report(scope=scope, window=window, environments=environments)
    figures, weekly, breakdown = report.figures, report.weekly, report.breakdown
    return {
        "question": question,
        "window": window,
        "environments": environments,
        "figures": figures,
        "tiles": present.tiles(figures, scope=scope, environment=environment, window=window),
        "charts": present.charts(weekly),
        "breakdown": breakdown,
        "rows": present.comparison_rows(breakdown, environment=environment, query=query, window=window),
        "breakdown_kind": "Team" if scope.kind == "org" else "Service",
    }


CSV_COLUMNS = [
    "period",
    "first_day",
    "last_day",
    "deployments",
    "successes",
    "failures",
    "rework",
    "deployments_per_day",
    "share_of_days_with_a_deployment",
    "change_fail_rate",
    "rework_rate",
    "recovery_median_seconds",
    "recovery_p90_seconds",
    "not_recovered",
    "lead_time_median_seconds",
    "lead_time_p90_seconds",
    "lead_time_measured",
    "deployment_frequency_band",
    "change_fail_rate_band",
    "recovery_time_band",
    "lead_time_band",
]


def csv_row(period: str, first: Any, last: Any, figures: selectors.Figures) -> list[Any]:
    marks = figures.bands

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.6g}"

    return [
        period,
        first.isoformat(),
        last.isoformat(),
        figures.deployments,
        figures.successes,
        figures.failures,
        figures.rework,
        number(figures.per_day),
        number(figures.share_of_days),
        number(figures.change_fail_rate),
        number(figures.rework_rate),
        number(figures.recovery_median),
        number(figures.recovery_p90),
        figures.unrecovered,
        number(figures.lead_median),
        number(figures.lead_p90),
        figures.leads,
        marks["deployment_frequency"].key,
        marks["change_fail_rate"].key,
        marks["recovery_time"].key,
        marks["lead_time"].key,
    ]


@login_required
@require_GET
def dora_csv(request: HttpRequest) -> HttpResponse:
    """The scope's figures for the whole window, then week by week, as CSV (no cell holds user-written text)."""
    form = InsightsForm(request.GET)
    if not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in form.errors.items())
        return HttpResponse(f"Bad request: {errors}\n", status=400, content_type="text/plain; charset=utf-8")
    question = form.question()
    scope, window, environments = question.scope, question.window, question.environments
    report = selectors.dora_report(scope=scope, window=window, environments=environments, breakdown=False)
    figures, weekly = report.figures, report.weekly
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = scope.key.replace(":", "-")
    response["Content-Disposition"] = f'attachment; filename="dora-{name}-{window.first_day}-{window.last_day}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    writer.writerow(csv_row("window", window.first_day, window.last_day, figures))
    for monday, week in weekly:
        first, last = max(monday, window.first_day), min(monday + timedelta(days=6), window.last_day)
        writer.writerow(csv_row("week", first, last, week))
    return response
