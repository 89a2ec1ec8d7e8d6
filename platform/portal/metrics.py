"""Runway's own metrics: `/metrics` in the Prometheus text format, for Prometheus (and the Grafana dashboard in docs/).

Two kinds of figures, chosen so that every process is counted right:

- Request latency is observed where it happens, in each gunicorn worker, by `RequestMetricsMiddleware`.
  prometheus_client runs in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by the settings before it is imported):
  each process writes its histograms to files there, and a scrape sums every process's files, whichever worker
  answers it.
- Everything about work done by Celery (deployments by state and strategy, rollbacks, step, scaffold and import
  durations) is read from the database at scrape time, a few grouped queries. The rows are the truth the workers
  write anyway: a counter kept in a worker would be lost with it, counted twice on a retried task, and missed by
  work recorded outside a worker (a deploy reported by an external CD system). Histograms built from finished rows only
  grow as rows are added, so Prometheus's rate() and histogram_quantile() work on them as on any histogram.
- Queue depth is read from the broker: the length of Celery's Redis lists. The filesystem broker (no REDIS_URL) has no
  queue metric; the family is left out rather than reported as 0, which would say "empty" when nobody looked.

Access: the bearer token METRICS_TOKEN, or a client address in METRICS_ALLOWED_NETWORKS (loopback by default). A
refused scrape gets 403 with a sentence saying what is needed (see `metrics_view`).
"""

import hmac
import ipaddress
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

# Seconds. Requests: a page is expected within 50 ms and one over 2.5 s is broken. Work: a step or a scaffold takes
# seconds to many minutes (a canary's analysis waits its interval).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WORK_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
ROWS_CACHE_KEY = "portal:metrics:rows"

REQUEST_SECONDS = Histogram(
    "runway_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it, by view name and method.",
    ["view", "method"],
    buckets=REQUEST_BUCKETS,
)


class RequestMetricsMiddleware:
    """Observe each request's latency under its view's URL name; touches no database and no cache."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        # The URL name, never the path: paths carry slugs and ids, and one label value per service would grow
        # Prometheus's series without bound. Unmatched paths (404s, probes for /wp-admin) share one value.
        view = (match.view_name or match._func_path) if match is not None else "<unresolved>"
        REQUEST_SECONDS.labels(view=view, method=_method(request.method)).observe(time.perf_counter() - started)
        return response


def _method(method: str | None) -> str:
    # Any string can arrive as a method; only the known ones become label values.
    return method if method in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} else "other"


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    # REMOTE_ADDR only: a forwarded-for header is written by the client and would let anyone claim loopback.
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_NETWORKS)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics of every process of this installation, for a scraper holding the token or on an allowed network.

    A refusal is a 403 rather than a 404: the endpoint is documented, so hiding it protects nothing, and a scraper
    set up with the wrong token then shows "403" on Prometheus's targets page, which points at the token, where a 404
    would send its operator looking for a wrong path.
    """
    if not _allowed(request):
        return HttpResponse(
            "Metrics need the bearer token METRICS_TOKEN (Authorization: Bearer …) or a client address in "
            "METRICS_ALLOWED_NETWORKS.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    live = CollectorRegistry()
    live.register(QueueCollector())
    return HttpResponse(
        generate_latest(registry) + _from_rows() + generate_latest(live), content_type=CONTENT_TYPE_LATEST
    )


def _from_rows() -> bytes:
    """The figures read from rows, kept METRICS_ROWS_CACHE_SECONDS in the shared cache.

    Step durations scan every deployment's timeline (about 0.4 s of PostgreSQL time on 500,000 events), so two
    Prometheus replicas scraping every 15 s, or a burst of scrapes, would cost that each time; cached, it is paid
    once per interval, whichever process answers. The histograms stay monotonic: a cached copy is only older.
    """
    seconds = settings.METRICS_ROWS_CACHE_SECONDS
    if seconds and (cached := cache.get(ROWS_CACHE_KEY)) is not None:
        return bytes(cached)
    registry = CollectorRegistry()
    registry.register(RunwayCollector())
    text = generate_latest(registry)
    if seconds:
        cache.set(ROWS_CACHE_KEY, text, seconds)
    return text


class RunwayCollector(Collector):
    """Figures read at scrape time from the database (see the module docstring for why)."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        from catalog.models import ImportRun
        from deployments.models import Deployment, State
        from scaffolder.models import ScaffoldRun

        deployments = GaugeMetricFamily(
            "runway_deployments", "Deployments by current state and strategy.", labels=["state", "strategy"]
        )
        rollbacks = CounterMetricFamily(
            "runway_deployment_rollbacks", "Deployments rolled back, by outcome.", labels=["outcome"]
        )
        outcomes = {State.ROLLED_BACK.value: 0, State.ROLLBACK_FAILED.value: 0}
        for row in Deployment.objects.order_by().values("state", "strategy").annotate(n=Count("id")):
            deployments.add_metric([row["state"], row["strategy"]], row["n"])
            if row["state"] in outcomes:
                outcomes[row["state"]] += row["n"]
        yield deployments
        for outcome, n in outcomes.items():
            rollbacks.add_metric([outcome], n)
        yield rollbacks
        yield _duration_histogram(
            "runway_deployment_duration_seconds", "Finished deployments, start to end.", Deployment.objects.all()
        )
        yield _step_histogram()
        yield _duration_histogram(
            "runway_scaffold_duration_seconds", "Finished scaffolder runs, start to end.", ScaffoldRun.objects.all()
        )
        yield _duration_histogram(
            "runway_catalog_import_duration_seconds", "Finished catalog imports, start to end.", ImportRun.objects.all()
        )


class QueueCollector(Collector):
    """The broker's queue, read at every scrape: one round trip, and a cached depth would hide a backlog growing."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = _queue_depth()
        if depth is not None:
            yield depth


def _duration_histogram(name: str, documentation: str, rows: QuerySet) -> HistogramMetricFamily:  # type: ignore[type-arg]
    """One aggregate query: count, sum and one count per bucket of finished_at - started_at."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    finished = rows.order_by().filter(started_at__isnull=False, finished_at__isnull=False).annotate(duration=duration)
    buckets = {f"le{i}": Count("id", filter=Q(duration__lte=timedelta(seconds=b))) for i, b in enumerate(WORK_BUCKETS)}
    totals = finished.aggregate(count=Count("id"), total=Sum("duration"), **buckets)
    seconds = totals["total"].total_seconds() if totals["total"] else 0.0
    pairs = [(_le(b), totals[f"le{i}"]) for i, b in enumerate(WORK_BUCKETS)] + [("+Inf", totals["count"])]
    return HistogramMetricFamily(name, documentation, buckets=pairs, sum_value=seconds)


def _step_histogram() -> HistogramMetricFamily:
    """How long deployments stayed in each state, from the timeline: one query over state changes.

    A state's time is from the change that entered it (or the deployment's creation, for the first) to the change that
    left it, so states being lived in now are not counted until they end.
    """
    from deployments.models import Deployment, DeploymentEvent

    events, deployments = DeploymentEvent._meta.db_table, Deployment._meta.db_table
    if connection.vendor == "postgresql":
        seconds = "EXTRACT(EPOCH FROM (e.at - COALESCE(e.entered, d.created_at)))"
    else:  # SQLite: julianday is in days
        seconds = "(julianday(e.at) - julianday(COALESCE(e.entered, d.created_at))) * 86400.0"
    bucket_columns = ", ".join(f"SUM(CASE WHEN s <= {b} THEN 1 ELSE 0 END)" for b in WORK_BUCKETS)
    sql = f"""
        WITH changes AS (
            SELECT deployment_id, from_state, at,
                   LAG(at) OVER (PARTITION BY deployment_id ORDER BY at, id) AS entered
            FROM {events} WHERE from_state <> ''
        ), spans AS (
            SELECT e.from_state AS step, {seconds} AS s
            FROM changes e JOIN {deployments} d ON d.id = e.deployment_id
        )
        SELECT step, COUNT(*), COALESCE(SUM(s), 0), {bucket_columns} FROM spans GROUP BY step ORDER BY step
    """  # noqa: S608 (table names and bucket bounds are ours, nothing from a request)
    family = HistogramMetricFamily(
        "runway_deployment_step_duration_seconds",
        "Time deployments spent in each state (step), counted when the step ends.",
        labels=["step"],
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        for step, count, total, *cumulative in cursor.fetchall():
            pairs = [(_le(b), int(n)) for b, n in zip(WORK_BUCKETS, cumulative, strict=True)] + [("+Inf", count)]
            family.add_metric([step], pairs, float(total))
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


def _queue_depth() -> GaugeMetricFamily | None:
    """Messages waiting in Celery's queue on Redis; None on the filesystem broker (see the module docstring)."""
    url = getattr(settings, "CELERY_BROKER_URL", "")
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    prefix = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", ""))
    queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
    family = GaugeMetricFamily("runway_celery_queue_depth", "Tasks waiting in the broker's queue.", labels=["queue"])
    # kombu keeps one Redis list per priority step: the plain name for priority 0, then name + "\x06\x16" + step.
    keys = [f"{prefix}{queue}"] + [f"{prefix}{queue}\x06\x16{step}" for step in (3, 6, 9)]
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.llen(key)
            family.add_metric([queue], sum(pipe.execute()))
    except redis.RedisError:
        return None  # the broker is down: no figure rather than a false 0; the web still answers
    finally:
        client.close()
    return family
