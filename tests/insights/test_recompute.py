"""Hypothesis: for random histories, the SQL figures equal a direct recomputation in Python from the raw records, read
from the service rollups (a service), the group rollups (the organisation, a team, a system), and computed directly;
with late events, late change sets and a service moving between teams and systems after the rollups were built."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.models import Service
from deployments.models import Deployment, Environment, State
from insights import rollups, selectors, tasks
from insights.selectors import Scope, Window
from tests.factories import SystemFactory, TeamFactory, service_make
from tests.insights.support import change_set_make, deployment_make, release_make

pytestmark = pytest.mark.django_db(transaction=False)

EPOCH = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW_DAYS = (date(2026, 3, 3), date(2026, 3, 12))
OUTCOMES = [
    (State.SUCCEEDED, ""),
    (State.ROLLED_BACK, ""),
    (State.ROLLBACK_FAILED, ""),
    (State.CANCELLED, ""),
    ("", "succeeded"),
    ("", "failed"),
    ("", "rolled_back"),
]


@dataclass
class Planned:
    service: int
    production: bool
    outcome: int
    start_minutes: int
    duration_minutes: int
    older_release: bool
    rollback: bool


planned = st.builds(
    Planned,
    service=st.integers(0, 2),
    production=st.booleans(),
    outcome=st.integers(0, len(OUTCOMES) - 1),
    start_minutes=st.integers(0, 16 * 24 * 60),
    duration_minutes=st.integers(0, 3 * 24 * 60),
    older_release=st.booleans(),
    rollback=st.booleans(),
)


def percentile(values: list[float], fraction: float) -> float | None:
    values = sorted(values)
    if not values:
        return None
    k = fraction * (len(values) - 1)
    low = int(k)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (k - low)


def recompute(
    rows: list[Deployment],
    *,
    window: Window,
    environments: set[int],
    services: set[int],
    first_commits: dict[int, datetime] | None = None,
) -> dict:
    """Every figure by its definition in docs/insights.md, written again from scratch over plain objects."""

    def reported(row: Deployment) -> str:
        return row.runtime_state.get("reported_status", "") if row.state == State.EXTERNAL else ""

    def success(row: Deployment) -> bool:
        return row.state == State.SUCCEEDED or reported(row) == "succeeded"

    def failure(row: Deployment) -> bool:
        failed = ("failed", "rolling_back", "rolled_back", "rollback_failed")
        return row.state in failed or reported(row) in ("failed", "rolled_back")

    def moment(row: Deployment) -> datetime:
        return row.finished_at or row.started_at or row.created_at

    counted = [
        r
        for r in rows
        if r.environment_id in environments
        and r.service_id in services
        and (success(r) or failure(r))
        and window.start <= moment(r) < window.end
    ]
    recoveries = []
    for r in counted:
        if not failure(r):
            continue
        if r.state == State.ROLLED_BACK or reported(r) == "rolled_back":
            recovered = r.finished_at
        else:
            later = [
                s.finished_at
                for s in rows
                if success(s)
                and s.service_id == r.service_id
                and s.environment_id == r.environment_id
                and s.finished_at
                and s.finished_at > r.started_at
            ]
            recovered = min(later) if later else None
        if recovered is not None:
            recoveries.append((recovered - r.started_at).total_seconds())
    rework = [
        r
        for r in counted
        if r.rollback_of_id is not None
        or r.state in ("rolling_back", "rolled_back", "rollback_failed")
        or reported(r) == "rolled_back"
        or (r.previous_release_id is not None and r.release_id < r.previous_release_id)
    ]
    days = {moment(r).astimezone(window.zone).date() for r in counted if success(r)}
    first_commits = first_commits or {}
    leads = [
        max((r.finished_at - first_commits[r.release_id]).total_seconds(), 0.0)
        for r in counted
        if success(r) and r not in rework and r.previous_release_id != r.release_id and r.release_id in first_commits
    ]
    return {
        "leads": len(leads),
        "lead_median": percentile(leads, 0.5),
        "lead_p90": percentile(leads, 0.9),
        "successes": sum(success(r) for r in counted),
        "failures": sum(failure(r) for r in counted),
        "rework": len(rework),
        "days_with_success": len(days),
        "recovered": len(recoveries),
        "median": percentile(recoveries, 0.5),
        "p90": percentile(recoveries, 0.9),
    }


def same(a: float | None, b: float | None) -> bool:
    return a == b if a is None or b is None else abs(a - b) < 1e-6


@pytest.fixture
def stage(db):  # type: ignore[no-untyped-def]
    production = Environment.objects.create(name="Production", slug="production", order=30, protected=True)
    staging = Environment.objects.create(name="Staging", slug="staging", order=20)
    teams = [TeamFactory(slug="red"), TeamFactory(slug="blue")]
    systems = [SystemFactory(slug="core", owner=teams[0]), SystemFactory(slug="edge", owner=teams[1])]
    services = [service_make(owner=teams[n % 2], system=systems[0] if n < 2 else None) for n in range(3)]
    return production, staging, teams, systems, services


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    history=st.lists(planned, max_size=25),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Chatham"]),
    # Each release's first commit, in minutes from the epoch (None: no change set), some after its deployments.
    changes=st.lists(st.one_of(st.none(), st.integers(-20 * 24 * 60, 16 * 24 * 60)), min_size=6, max_size=6),
    # The rollups are built after this many deployments; the others arrive later, in any order (late events), as do
    # the change sets of odd-numbered releases.
    built_after=st.integers(0, 25),
    order=st.randoms(use_true_random=False),
    # After the history, a service may move to the other team and another system: its days move with it.
    moved=st.sampled_from([None, 0, 1, 2]),
)
def test_sql_figures_and_rollups_equal_a_recomputation_from_the_records(
    stage,
    history: list[Planned],
    zone: str,
    changes: list[int | None],
    built_after: int,
    order: Any,
    moved: int | None,
) -> None:
    production, staging, teams, systems, services = stage
    # Read afresh: an earlier example moved one in memory, and its transaction was rolled back.
    services = list(Service.objects.filter(pk__in=[s.pk for s in services]).order_by("pk"))
    with transaction.atomic(), override_settings(TIME_ZONE=zone):
        releases = {s.pk: [release_make(s), release_make(s)] for s in services}
        all_releases = [r for pair in releases.values() for r in pair]
        first_commits = {}
        late_change_sets = []
        for n, (release, minutes) in enumerate(zip(all_releases, changes, strict=True)):
            if minutes is not None:
                first_commits[release.pk] = EPOCH + timedelta(minutes=minutes)
                if n % 2:
                    late_change_sets.append(release)
                else:
                    change_set_make(release, first_commits[release.pk], first_commits[release.pk] + timedelta(hours=1))
        busy: dict[tuple[int, int], datetime] = defaultdict(lambda: EPOCH - timedelta(days=30))
        plans = []
        for plan in sorted(history, key=lambda p: p.start_minutes):
            service = services[plan.service]
            environment = production if plan.production else staging
            # One deployment at a time per service and environment, as the engine (and the database) insists.
            started = max(EPOCH + timedelta(minutes=plan.start_minutes), busy[(service.pk, environment.pk)])
            finished = started + timedelta(minutes=plan.duration_minutes)
            busy[(service.pk, environment.pk)] = finished + timedelta(seconds=1)
            plans.append((plan, service, environment, started, finished))
        order.shuffle(plans)
        made: list[Deployment] = []
        for n, (plan, service, environment, started, finished) in enumerate(plans):
            if n == built_after:
                rollups.rollups_rebuild()
            state, reported = OUTCOMES[plan.outcome]
            old, new = releases[service.pk]
            previous = [d for d in made if d.service_id == service.pk and d.environment_id == environment.pk]
            made.append(
                deployment_make(
                    service,
                    environment,
                    state,
                    started=started,
                    finished=finished,
                    release=old if plan.older_release else new,
                    previous_release=new if plan.older_release else None,
                    rollback_of=previous[-1] if plan.rollback and previous else None,
                    reported=reported,
                )
            )
            if n >= built_after:  # what the worker does once the late event commits
                tasks.rollups_refresh(made[-1].pk)
        if built_after >= len(plans):
            rollups.rollups_rebuild()
        for release in late_change_sets:  # a forge answering after the deployments were made
            change_set_make(release, first_commits[release.pk], first_commits[release.pk] + timedelta(hours=1))
            for deployment_id in Deployment.objects.filter(release=release).values_list("pk", flat=True):
                tasks.rollups_refresh(deployment_id)
        if moved is not None:  # saved as a transfer or a catalog edit saves it: the team and system rows follow
            mover = services[moved]
            mover.owner = teams[1] if mover.owner_id == teams[0].pk else teams[0]
            mover.system = systems[1] if mover.system_id == systems[0].pk else systems[0]
            mover.save()
        rows = list(Deployment.objects.all())
        window = Window(*WINDOW_DAYS, ZoneInfo(zone))
        # The rollups are PostgreSQL's (jsonb, PERCENTILE_CONT); on SQLite pages always compute directly.
        assert rollups.zone_of_rollups() == (ZoneInfo(zone) if connection.vendor == "postgresql" else None)
        scopes = [
            (Scope("org"), {s.pk for s in services}),
            (selectors.scope_find(f"team:{teams[0].slug}"), {s.pk for s in services if s.owner_id == teams[0].pk}),
            (selectors.scope_find(f"team:{teams[1].slug}"), {s.pk for s in services if s.owner_id == teams[1].pk}),
            (
                selectors.scope_find(f"system:{systems[0].slug}"),
                {s.pk for s in services if s.system_id == systems[0].pk},
            ),
            (selectors.scope_find(f"service:{services[2].slug}"), {services[2].pk}),
        ]
        for environments in ([production], [staging, production]):
            for scope, members in scopes:
                want = recompute(
                    rows,
                    window=window,
                    environments={e.pk for e in environments},
                    services=members,
                    first_commits=first_commits,
                )
                from_rollups = selectors.dora_report(scope=scope, window=window, environments=environments)
                with override_settings(INSIGHTS_ROLLUPS=False):
                    direct = selectors.dora_report(scope=scope, window=window, environments=environments)
                for got in (from_rollups.figures, direct.figures):
                    assert (got.successes, got.failures, got.rework, got.days_with_success, got.recovered) == (
                        want["successes"],
                        want["failures"],
                        want["rework"],
                        want["days_with_success"],
                        want["recovered"],
                    )
                    assert same(got.recovery_median, want["median"]) and same(got.recovery_p90, want["p90"])
                    assert got.leads == want["leads"]
                    assert same(got.lead_median, want["lead_median"]) and same(got.lead_p90, want["lead_p90"])
                # Week by week and team by team (or service by service), the rollups say what the records say.
                assert summary(from_rollups.weekly) == summary(direct.weekly)
                assert summary(from_rollups.breakdown) == summary(direct.breakdown)
        transaction.set_rollback(True)


def summary(points: list) -> list:  # type: ignore[type-arg]
    return [
        (
            key,
            f.successes,
            f.failures,
            f.rework,
            f.days_with_success,
            f.recovered,
            f.leads,
            *(
                None if v is None else round(v, 6)
                for v in (f.recovery_median, f.recovery_p90, f.lead_median, f.lead_p90)
            ),
        )
        for key, f in points
    ]
