"""Reads for the deployment pages: the board, one deployment with its timeline and charts, the environments
matrix and a service's deploy summary. Each is a fixed number of queries, whatever the number of rows."""

import math
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Exists, F, OuterRef, Prefetch, QuerySet

from catalog.models import Service
from deployments.analysis import percent
from deployments.models import (
    ACTIVE_STATES,
    Decommission,
    DecommissionState,
    Deployment,
    DeploymentEvent,
    DeployTarget,
    Environment,
    Placement,
)

BOARD_RECENT = 25  # finished deployments per page of the board
BOARD_SERVICES = 500  # slugs the board's service box suggests


def _with_related(queryset: QuerySet[Deployment]) -> QuerySet[Deployment]:
    return queryset.select_related(
        "release", "previous_release", "service", "service__owner", "environment", "requested_by"
    )


def deployment_list_visible(*, user: object) -> QuerySet[Deployment]:
    """Every signed-in user may see every deployment, as they see the catalog; the board and its filters start here."""
    return Deployment.objects.all()


def board(
    *, deployments: QuerySet[Deployment] | None = None, page: int | str | None = 1, per_page: int = BOARD_RECENT
) -> dict[str, Any]:
    """Everything in flight among `deployments`, and a page of those finished, latest first; four queries."""
    deployments = Deployment.objects.all() if deployments is None else deployments
    active = list(_with_related(deployments.filter(state__in=ACTIVE_STATES)).order_by("created_at", "id"))
    finished = _with_related(deployments.exclude(state__in=ACTIVE_STATES)).order_by(
        F("finished_at").desc(nulls_last=True), "-id"
    )
    page_obj = Paginator(finished, per_page).get_page(page)
    return {"active": active, "recent": page_obj.object_list, "page": page_obj}


def board_service_slugs() -> list[str]:
    """The slugs the board's service box suggests: services with deployments, by slug."""
    deployed = Deployment.objects.filter(service=OuterRef("pk"))
    return list(
        Service.objects.filter(Exists(deployed)).order_by("slug").values_list("slug", flat=True)[:BOARD_SERVICES]
    )


def deployment_get(pk: int) -> Deployment:
    return _with_related(Deployment.objects.select_related("previous_release", "rollback_of")).get(pk=pk)


def timeline(deployment: Deployment) -> list[DeploymentEvent]:
    return list(deployment.events.all())


@dataclass
class AnalysisPoint:
    label: str
    verdict: str
    canary_p95: float
    baseline_p95: float | None
    canary_error_rate: float
    baseline_error_rate: float | None
    p_value: float | None


def analyses(events: list[DeploymentEvent], *, plan: list[dict[str, Any]] | None = None) -> list[AnalysisPoint]:
    """The analysis figures recorded on the timeline, one point per analysis, for the charts.

    Each point is named by its plan step's label ("canary at 25 %"), as the plan list names it, else by its number.
    """
    points = []
    for event in events:
        if event.message != "Analysis figures" or "figures" not in event.data:
            continue
        figures = event.data["figures"]
        canary, baseline = figures.get("canary") or {}, figures.get("baseline") or None
        mann_whitney = figures.get("mann_whitney") or {}
        index = int(event.data.get("step", 0))
        step = plan[index] if plan and 0 <= index < len(plan) else {}
        points.append(
            AnalysisPoint(
                label=str(step.get("label") or f"step {index + 1}"),
                verdict=event.data.get("verdict", ""),
                canary_p95=float(canary.get("p95_ms") or 0),
                baseline_p95=float(baseline["p95_ms"]) if baseline and baseline.get("p95_ms") is not None else None,
                canary_error_rate=float(canary.get("error_rate") or 0),
                baseline_error_rate=float(baseline["error_rate"])
                if baseline and baseline.get("error_rate") is not None
                else None,
                p_value=mann_whitney.get("p_value"),
            )
        )
    return points


def _nice_ceiling(value: float) -> float:
    """The axis top: the first of 1, 2, 2.5, 5 × 10ⁿ at or above `value`, so the tick reads as a round number."""
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def _figure_text(value: float, metric: str) -> str:
    """A bar's or tick's figure; an error rate (in percent here) is written by `percent()`, as the timeline does."""
    return f"{value:.1f} ms" if metric == "p95" else percent(value / 100)


def chart(points: list[AnalysisPoint], *, metric: str, width: int = 560, height: int = 180) -> dict[str, Any]:
    """Grouped bars (canary beside baseline) per analysis, scaled to fit; geometry only, the template draws."""
    values: list[tuple[AnalysisPoint, float, float | None]] = []
    for point in points:
        if metric == "p95":
            values.append((point, point.canary_p95, point.baseline_p95))
        else:
            values.append(
                (
                    point,
                    point.canary_error_rate * 100,
                    (point.baseline_error_rate or 0) * 100 if point.baseline_error_rate is not None else None,
                )
            )
    top = _nice_ceiling(max([1.0] + [v for _, c, b in values for v in (c, b) if v is not None]))
    plot_height, left, bottom = height - 40, 58, height - 24  # room for "100.0 %" beside the axis
    slot = (width - left - 10) / max(len(values), 1)
    bar = min(28.0, slot / 3)
    bars = []
    for index, (point, canary, baseline) in enumerate(values):
        x = left + index * slot + slot / 2 - bar
        for offset, value, kind in ((0.0, baseline, "baseline"), (bar, canary, "canary")):
            if value is None:
                continue
            h = plot_height * value / top
            bars.append(
                {
                    "x": round(x + offset, 1),
                    "y": round(bottom - h, 1),
                    "w": round(bar - 2, 1),
                    "h": round(h, 1),
                    "kind": kind,
                    "value": round(value, 2),
                    "text": _figure_text(value, metric),
                    "label": point.label,
                    "verdict": point.verdict,
                }
            )
    labels = [
        {"x": round(left + index * slot + slot / 2, 1), "text": point.label, "verdict": point.verdict}
        for index, (point, _, _) in enumerate(values)
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "top": round(top, 2),
        "top_text": f"{top:g} ms" if metric == "p95" else _figure_text(top, metric),
        "zero_text": "0 ms" if metric == "p95" else _figure_text(0.0, metric),
        "unit": "ms" if metric == "p95" else "%",
        "bottom": bottom,
        "left": left,
        "axis_top": bottom - plot_height,
    }


@dataclass
class MatrixCell:
    placement: Placement | None
    active: Deployment | None
    differs: bool  # runs another version than the environment before it in promotion order


@dataclass
class MatrixRow:
    service: Service
    cells: list[MatrixCell]


def matrix(*, owner_slug: str = "", q: str = "", page: int = 1, per_page: int = 50) -> dict[str, Any]:
    """Which release of each service runs in each environment; services paginated, four queries per page."""
    environments = list(Environment.objects.all())
    services = Service.objects.select_related("owner").exclude(lifecycle=Service.Lifecycle.DECOMMISSIONED)
    if owner_slug:
        services = services.filter(owner__slug=owner_slug)
    if q:
        services = services.filter(slug__icontains=q)
    services = services.filter(deploy_targets__isnull=False).distinct().order_by("slug")
    paginator = Paginator(
        services.prefetch_related(
            Prefetch("placements", queryset=Placement.objects.select_related("release")),
            Prefetch(
                "deployments",
                queryset=Deployment.objects.filter(state__in=ACTIVE_STATES).select_related("release"),
                to_attr="active_deployments",
            ),
        ),
        per_page,
    )
    page_obj: Page = paginator.get_page(page)
    rows = []
    for service in page_obj.object_list:
        placed = {placement.environment_id: placement for placement in service.placements.all()}
        active = {deployment.environment_id: deployment for deployment in service.active_deployments}
        cells, previous = [], None
        for environment in environments:
            placement = placed.get(environment.pk)
            version = placement.release_id if placement else None
            differs = previous is not None and version is not None and version != previous
            cells.append(MatrixCell(placement=placement, active=active.get(environment.pk), differs=differs))
            previous = version if version is not None else previous
        rows.append(MatrixRow(service=service, cells=cells))
    return {"environments": environments, "rows": rows, "page": page_obj}


def service_summary(*, service: Service, present: Container[str] | None = None) -> dict[str, Any]:
    """A service's deploy targets with what runs in each and what is in flight, and its recent deployments.

    `present` (from `catalog.selectors.service_page_parts`) says which of "deploy_targets", "deployments" and
    "decommissions" the service has: none is read that it has not."""

    def has(part: str) -> bool:
        return present is None or part in present

    targets = (
        list(DeployTarget.objects.filter(service=service).select_related("environment"))
        if has("deploy_targets")
        else []
    )
    placements: dict[int, Any] = {}
    active: dict[int, Any] = {}
    if targets:  # what runs and what is in flight are shown per target: none to read for a service without one
        placements = {p.environment_id: p for p in Placement.objects.filter(service=service).select_related("release")}
        active = {
            d.environment_id: d
            for d in Deployment.objects.filter(service=service, state__in=ACTIVE_STATES).select_related("release")
        }
    rows = [
        {"target": t, "placement": placements.get(t.environment_id), "active": active.get(t.environment_id)}
        for t in targets
    ]
    # Only what the page's list of the latest shows: the whole rows and their five joined records were 93 columns.
    shown = ("state", "paused", "needs_attention", "break_glass_reason", "created_at", "release__version")
    recent = (
        list(
            Deployment.objects.filter(service=service)
            .select_related("release", "environment")
            .only("service_id", "environment__name", *shown)[:10]
        )
        if has("deployments")
        else []
    )
    decommissions = Decommission.objects.filter(service=service).exclude(state=DecommissionState.CANCELLED)
    decommission = decommissions.first() if has("decommissions") else None
    return {"targets": rows, "recent": recent, "decommission": decommission}
