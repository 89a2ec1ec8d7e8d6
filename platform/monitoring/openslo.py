"""OpenSLO `kind: SLO` documents: what Runway reads from them, and every refusal with the field to fix.

Runway reads the subset of OpenSLO v1 that it can evaluate: one objective per SLO, an inline indicator
(`spec.indicator`) that is a `ratioMetric` (good and total) or a `thresholdMetric`, over Prometheus (`type:
Prometheus`, `spec.query` in PromQL) or over Runway's own health check probes (`type: RunwayProbe`,
`spec.environment`), a rolling time window of 1 to 90 days (28 days when absent) and occurrence budgeting.
PromQL is parsed before anything is stored, so a typo is refused with the parser's message rather than found by the
worker later.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import promql_parser

from portal import validators

API_VERSION = "openslo/v1"
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DURATION = re.compile(r"^(\d{1,3})([dw])$")
OPS = ("lt", "lte", "gt", "gte")
MAX_QUERY = 4000
MAX_DOCUMENT = 20_000
# metadata.annotations: whether this SLO's page alerts open an incident ("page") or not ("off"); absent, the
# organisation's MONITORING_SLO_INCIDENTS decides.
INCIDENTS_ANNOTATION = "runway.dev/incidents"
INCIDENTS_CHOICES = ("page", "off")


class SloError(ValueError):
    """A document Runway cannot use; `field` is the dotted path of what to fix."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class ParsedSlo:
    """The fields of `monitoring.models.SLO` a document gives (the service and environment still as slugs)."""

    name: str
    display_name: str
    description: str
    service: str
    sli_kind: str
    source: str
    good_query: str
    total_query: str
    counter: bool
    threshold_query: str
    threshold_op: str
    threshold_value: float | None
    environment: str
    target: float
    window_days: int
    document: dict[str, Any]
    incidents: str = ""


def _mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SloError("must be a mapping.", field)
    return value


def _text(value: Any, field: str, *, required: bool = True, limit: int = 200) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise SloError("must be a non-empty string." if required else "must be a string.", field)
    if len(value) > limit:
        raise SloError(f"is longer than {limit} characters.", field)
    if "\x00" in value:
        raise SloError("contains a NUL character (\\0).", field)
    return value.strip()


def promql_check(query: Any, field: str) -> str:
    """The query if PromQL parses it, else SloError with the parser's own words."""
    text = _text(query, field, limit=MAX_QUERY)
    try:
        promql_parser.parse(text)
    except ValueError as error:
        raise SloError(f"is not valid PromQL: {error}.", field) from error
    return text


def _source(metric: Any, field: str) -> tuple[str, dict[str, Any]]:
    metric = _mapping(metric, field)
    source = _mapping(metric.get("metricSource"), f"{field}.metricSource")
    kind = source.get("type")
    spec = _mapping(source.get("spec"), f"{field}.metricSource.spec")
    if kind == "Prometheus":
        return "prometheus", {"query": promql_check(spec.get("query"), f"{field}.metricSource.spec.query")}
    if kind == "RunwayProbe":
        environment = _text(spec.get("environment"), f"{field}.metricSource.spec.environment", limit=50)
        return "probe", {"environment": environment}
    raise SloError(
        f"Unknown metric source {kind!r}; Runway reads Prometheus and RunwayProbe.", f"{field}.metricSource.type"
    )


def _window_days(spec: dict[str, Any]) -> int:
    windows = spec.get("timeWindow")
    if windows is None:
        return 28
    if not isinstance(windows, list) or len(windows) != 1:
        raise SloError("must be a list of one window (Runway keeps one rolling window per SLO).", "spec.timeWindow")
    window = _mapping(windows[0], "spec.timeWindow[0]")
    if window.get("isRolling") is not True:
        raise SloError("Calendar windows are not supported; use isRolling: true.", "spec.timeWindow[0].isRolling")
    duration = window.get("duration", "28d")
    match = DURATION.match(duration) if isinstance(duration, str) else None
    if not match:
        raise SloError("must be days or weeks, such as 28d or 4w.", "spec.timeWindow[0].duration")
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    if not 1 <= days <= 90:
        raise SloError("must be between 1 and 90 days.", "spec.timeWindow[0].duration")
    return days


def _objective(spec: dict[str, Any], threshold: bool) -> tuple[float, str, float | None]:
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or len(objectives) != 1:
        raise SloError("must be a list of exactly one objective (write one SLO per objective).", "spec.objectives")
    objective = _mapping(objectives[0], "spec.objectives[0]")
    if "target" in objective:
        target = objective["target"]
        field = "spec.objectives[0].target"
    elif "targetPercent" in objective:
        value = objective["targetPercent"]
        target = value / 100 if isinstance(value, int | float) and not isinstance(value, bool) else value
        field = "spec.objectives[0].targetPercent"
    else:
        raise SloError("needs a target (0.999) or a targetPercent (99.9).", "spec.objectives[0]")
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
        raise SloError("must be above 0 and below 1 (0.999), or a percentage below 100.", field)
    op, value = "", None
    if threshold:
        op = str(objective.get("op"))
        if op not in OPS:
            raise SloError(f"must be one of {', '.join(OPS)}.", "spec.objectives[0].op")
        raw = objective.get("value")
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw != raw or abs(raw) > 1e15:
            raise SloError("must be a number.", "spec.objectives[0].value")
        value = float(raw)
    return float(target), op, value


def slo_parse(document: Any) -> ParsedSlo:
    """Read one OpenSLO document; SloError names the first field to fix."""
    document = _mapping(document, "")
    where = validators.nul_path(document)
    if where is not None:
        raise SloError("contains a NUL character (\\0), which Runway cannot store.", where or None)
    try:
        size = len(json.dumps(document, default=str))
    except (RecursionError, ValueError) as error:
        raise SloError("This SLO is nested too deeply to store.") from error
    if size > MAX_DOCUMENT:
        raise SloError(f"This SLO is longer than {MAX_DOCUMENT} characters as JSON; shorten it.")
    if document.get("apiVersion") != API_VERSION:
        raise SloError(f"Unknown apiVersion {document.get('apiVersion')!r}; use {API_VERSION}.", "apiVersion")
    if document.get("kind") != "SLO":
        raise SloError(
            f"Runway reads kind SLO, not {document.get('kind')!r}; put the SLI inline under spec.indicator.", "kind"
        )
    metadata = _mapping(document.get("metadata"), "metadata")
    name = _text(metadata.get("name"), "metadata.name", limit=63)
    if not NAME.match(name):
        raise SloError("must be lower-case letters, digits and dashes (payments-availability).", "metadata.name")
    spec = _mapping(document.get("spec"), "spec")
    if spec.get("budgetingMethod", "Occurrences") != "Occurrences":
        raise SloError("Only Occurrences budgeting is supported.", "spec.budgetingMethod")
    if "indicatorRef" in spec and "indicator" not in spec:
        raise SloError("Runway reads the indicator inline; move the SLI under spec.indicator.", "spec.indicatorRef")
    indicator = _mapping(_mapping(spec.get("indicator"), "spec.indicator").get("spec"), "spec.indicator.spec")
    good = total = threshold_query = environment = ""
    counter = True
    if "ratioMetric" in indicator:
        ratio = _mapping(indicator["ratioMetric"], "spec.indicator.spec.ratioMetric")
        base = "spec.indicator.spec.ratioMetric"
        if "good" not in ratio:
            raise SloError("needs good and total (bad is not read).", base)
        good_source, good_spec = _source(ratio.get("good"), f"{base}.good")
        total_source, total_spec = _source(ratio.get("total"), f"{base}.total")
        if good_source != total_source:
            raise SloError("good and total must come from the same source.", f"{base}.total.metricSource.type")
        source, kind = good_source, "ratio"
        counter = ratio.get("counter", True)
        if not isinstance(counter, bool):
            raise SloError("must be true (cumulative counters) or false (per-second rates).", f"{base}.counter")
        if source == "prometheus":
            good, total = good_spec["query"], total_spec["query"]
        else:
            if good_spec["environment"] != total_spec["environment"]:
                raise SloError("good and total must probe the same environment.", f"{base}.total.metricSource.spec")
            environment = good_spec["environment"]
    elif "thresholdMetric" in indicator:
        source, threshold_spec = _source(indicator["thresholdMetric"], "spec.indicator.spec.thresholdMetric")
        kind = "threshold"
        threshold_query = threshold_spec.get("query", "")
        environment = threshold_spec.get("environment", "")
    else:
        raise SloError("needs a ratioMetric or a thresholdMetric.", "spec.indicator.spec")
    target, op, value = _objective(spec, kind == "threshold")
    annotations = _mapping(metadata.get("annotations", {}), "metadata.annotations")
    incidents = annotations.get(INCIDENTS_ANNOTATION, "")
    if incidents not in ("", *INCIDENTS_CHOICES):
        raise SloError(
            f"must be {' or '.join(INCIDENTS_CHOICES)} (or absent: the organisation's setting).",
            f"metadata.annotations.{INCIDENTS_ANNOTATION}",
        )
    return ParsedSlo(
        name=name,
        display_name=_text(metadata.get("displayName"), "metadata.displayName", required=False),
        description=_text(spec.get("description"), "spec.description", required=False, limit=2000),
        service=_text(spec.get("service"), "spec.service", limit=100),
        sli_kind=kind,
        source=source,
        good_query=good,
        total_query=total,
        counter=counter,
        threshold_query=threshold_query,
        threshold_op=op,
        threshold_value=value,
        environment=environment,
        target=target,
        window_days=_window_days(spec),
        document=document,
        incidents=incidents,
    )
