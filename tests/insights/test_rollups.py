"""The daily rollups: the hand-made history's figures read from them, late events, and what keeps them current."""

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import override_settings

from deployments.models import State
from insights import rollups, selectors, tasks
from insights.models import DailyRollup, GroupRollup, RollupState
from insights.selectors import Scope, Window
from tests.factories import TeamFactory, UserFactory, service_make
from tests.insights.conftest import at
from tests.insights.support import change_set_make, deployment_make, release_make

pytestmark = [pytest.mark.django_db, pytest.mark.postgres_only]

PARIS = ZoneInfo("Europe/Paris")
WINDOW = Window(date(2026, 3, 2), date(2026, 3, 15), PARIS)


@pytest.fixture
def built(history, settings, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """The hand-made history with rollups built in its time zone (the portal's TIME_ZONE is where their days are)."""
    settings.TIME_ZONE = "Europe/Paris"
    with django_capture_on_commit_callbacks(execute=True):
        rollups.rollups_rebuild()
    return history


def report(scope: Scope, window: Window = WINDOW):  # type: ignore[no-untyped-def]
    return selectors.dora_report(scope=scope, window=window, environments=selectors.environments_default())


def reads_rollups(scope: Scope, window: Window = WINDOW) -> bool:
    seen: list[str] = []
    with connection.execute_wrapper(lambda execute, sql, *args: seen.append(sql) or execute(sql, *args)):
        report(scope, window)
    tables = (DailyRollup._meta.db_table, GroupRollup._meta.db_table)
    return any(table in sql for sql in seen for table in tables)


def test_the_hand_made_figures_come_from_the_rollups(built, django_assert_max_num_queries) -> None:
    assert RollupState.objects.get().zone == "Europe/Paris"
    # pay-api's success at 00:30 on 2 March in Paris (23:30 UTC on the 1st) is on the 2nd's row.
    assert DailyRollup.objects.filter(service=built.pay_api, day=date(2026, 3, 2), successes=1).exists()
    assert reads_rollups(Scope("org"))
    with django_assert_max_num_queries(3):  # the environments, the report, the teams' names
        org = report(Scope("org")).figures
    # The same hand-computed figures as tests/insights/test_selectors.py, from the records.
    assert (org.successes, org.failures, org.deployments, org.rework, org.days_with_success) == (7, 5, 12, 5, 7)
    assert (org.recovered, org.unrecovered) == (4, 1)
    assert org.recovery_median == pytest.approx(12600) and org.recovery_p90 == pytest.approx(127440)
    assert org.leads == 4 and org.lead_median == pytest.approx(2700) and org.lead_p90 == pytest.approx(61560)
    payments = report(selectors.scope_find("team:payments"))
    assert (payments.figures.successes, payments.figures.failures, payments.figures.rework) == (6, 3, 4)
    assert payments.figures.lead_median == 3600 and payments.figures.bands["lead_time"].key == "high"
    assert [s.slug for s, _ in payments.breakdown] == ["ledger", "pay-api"]
    search = report(selectors.scope_find("team:search")).figures
    assert search.recovery_median == 3600 and search.bands["recovery_time"].key == "high"


def test_an_empty_window_is_no_data_not_elite(built) -> None:
    empty = report(Scope("org"), Window(date(2025, 6, 1), date(2025, 6, 30), PARIS))
    figures = empty.figures
    assert figures.deployments == 0 and figures.per_day is None and figures.change_fail_rate is None
    assert {band.key for band in figures.bands.values()} == {"no_data"}
    assert all(week.deployments == 0 for _, week in empty.weekly)
    quiet = report(selectors.scope_find("team:quiet")).figures
    assert quiet.deployments == 0 and quiet.bands["change_fail_rate"].key == "no_data"


def test_another_time_zone_is_computed_directly(built) -> None:
    utc = Window(date(2026, 3, 2), date(2026, 3, 15), ZoneInfo("UTC"))
    assert not reads_rollups(Scope("org"), utc)
    # In UTC, 23:30 on 1 March is outside and 23:05 on 15 March inside: the figures differ from Paris's.
    figures = report(Scope("org"), utc).figures
    assert (figures.successes, figures.days_with_success) == (7, 6)  # both of 15 March's on one UTC day


def test_a_late_deploy_event_rewrites_the_days_it_changes(built) -> None:
    production = built.production
    # finder's reported failure at 10:00 UTC on 14 March was not recovered; a success reported late, finished on the
    # 15th at 09:00 UTC, recovers it (23 h) and adds a success on the 15th.
    late = deployment_make(
        built.finder,
        production,
        "",
        started=at("2026-03-15 08:55"),
        finished=at("2026-03-15 09:00"),
        reported="succeeded",
    )
    since = rollups.refresh_since(late)
    assert since == date(2026, 3, 9)  # finder's previous success: every failure since may recover at this one
    tasks.rollups_refresh(late.pk)
    search = report(selectors.scope_find("team:search")).figures
    with override_settings(INSIGHTS_ROLLUPS=False):
        direct = report(selectors.scope_find("team:search")).figures
    assert (search.successes, search.recovered, search.unrecovered) == (2, 2, 0)
    assert search.recovery_median == direct.recovery_median == pytest.approx((3600 + 23 * 3600) / 2)
    assert DailyRollup.objects.get(service=built.finder, day=date(2026, 3, 14)).recovery_seconds == [82800.0]


def test_a_change_set_arriving_late_gives_the_deployments_their_lead_time(built) -> None:
    release = release_make(built.finder)
    deployment = deployment_make(
        built.finder,
        built.production,
        State.SUCCEEDED,
        started=at("2026-03-13 09:00"),
        finished=at("2026-03-13 10:00"),
        release=release,
    )
    tasks.rollups_refresh(deployment.pk)
    assert report(selectors.scope_find("service:finder")).figures.leads == 1
    change_set_make(release, at("2026-03-13 07:00"))
    tasks.rollups_refresh(deployment.pk)
    finder = report(selectors.scope_find("service:finder")).figures
    assert finder.leads == 2 and finder.lead_median == pytest.approx((1800 + 3 * 3600) / 2)


def test_changes_enqueue_a_refresh_when_they_commit(built, django_capture_on_commit_callbacks, mocker) -> None:
    delay = mocker.patch("insights.tasks.rollups_refresh.delay")
    with django_capture_on_commit_callbacks(execute=True):
        deployment = deployment_make(
            built.finder, built.production, State.SUCCEEDED, started=at("2026-03-12 09:00"), finished=None
        )
    delay.assert_called_once_with(deployment.pk)
    delay.reset_mock()
    with django_capture_on_commit_callbacks(execute=True):
        deployment_make(built.finder, built.production, State.CANCELLED, started=at("2026-03-12 10:00"), finished=None)
    delay.assert_not_called()  # a cancelled deployment never counts: nothing to rewrite


def test_the_sweep_builds_the_rollups_once_then_rewrites_recent_days(history, settings) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    assert not reads_rollups(Scope("org"))  # not built yet: pages compute directly
    assert rollups.rollups_sweep() == DailyRollup.objects.count() > 0
    assert reads_rollups(Scope("org"))
    settings.TIME_ZONE = "UTC"  # the portal moved: the rollups' days are rebuilt in its zone
    rollups.rollups_sweep()
    assert RollupState.objects.get().zone == "UTC"


def test_refresh_does_nothing_before_the_rollups_are_built(history) -> None:
    deployment = deployment_make(
        history.finder, history.production, State.SUCCEEDED, started=at("2026-03-12 09:00"), finished=None
    )
    assert rollups.rollups_refresh(deployment_id=deployment.pk) == 0 and not DailyRollup.objects.exists()


def figures_both_ways(scope: Scope) -> tuple[selectors.Figures, selectors.Figures]:
    from_rollups = report(scope).figures
    with override_settings(INSIGHTS_ROLLUPS=False):
        direct = report(scope).figures
    return from_rollups, direct


def same_figures(a: selectors.Figures, b: selectors.Figures) -> bool:
    return (a.successes, a.failures, a.rework, a.days_with_success, a.recovered, a.leads) == (
        b.successes,
        b.failures,
        b.rework,
        b.days_with_success,
        b.recovered,
        b.leads,
    ) and all(
        x == y or (x is not None and y is not None and abs(x - y) < 1e-6)
        for x, y in (
            (a.recovery_median, b.recovery_median),
            (a.recovery_p90, b.recovery_p90),
            (a.lead_median, b.lead_median),
            (a.lead_p90, b.lead_p90),
        )
    )


def test_the_organisation_and_team_rows_sum_the_service_rows(built) -> None:
    # One row per day for the organisation; its values are every service's of that day, merged and sorted.
    org_days = GroupRollup.objects.filter(level="org", environment=built.production)
    assert org_days.count() == len({r.day for r in DailyRollup.objects.filter(environment=built.production)})
    march_3 = org_days.get(day=date(2026, 3, 3))
    services = DailyRollup.objects.filter(environment=built.production, day=date(2026, 3, 3))
    assert march_3.successes == sum(r.successes for r in services)
    assert march_3.recovery_seconds == sorted(v for r in services for v in r.recovery_seconds)
    assert GroupRollup.objects.filter(level="system", group_id=built.pay_api.system_id).exists()
    assert not GroupRollup.objects.filter(level="team", group_id=built.quiet.pk).exists()  # nothing deployed
    for scope in ("org", "team:payments", "team:search", "system:payments-core"):
        assert same_figures(*figures_both_ways(selectors.scope_find(scope)))


def test_a_service_moving_to_another_team_takes_its_days_along(built) -> None:
    from catalog import services as catalog_services

    admin = UserFactory(is_staff=True, is_superuser=True)
    before = report(selectors.scope_find("team:search")).figures
    assert before.deployments == 3
    catalog_services.service_transfer(service=built.finder, new_owner=built.payments, transferred_by=admin)
    search, direct_search = figures_both_ways(selectors.scope_find("team:search"))
    assert search.deployments == direct_search.deployments == 0
    assert not GroupRollup.objects.filter(level="team", group_id=built.search.pk).exists()
    payments, direct_payments = figures_both_ways(selectors.scope_find("team:payments"))
    assert payments.deployments == 12 and same_figures(payments, direct_payments)
    assert same_figures(*figures_both_ways(Scope("org")))


def test_the_organisation_and_team_pages_read_the_group_rows_in_constant_queries(
    built, client, django_assert_max_num_queries
) -> None:
    client.force_login(UserFactory())
    query = {"since": "2026-03-02", "until": "2026-03-15", "tz": "Europe/Paris"}
    counts = {}
    for url in ("/insights/", "/insights/teams/payments/", "/insights/systems/payments-core/"):
        with django_assert_max_num_queries(7) as captured:
            page = client.get(url, query)
        assert page.status_code == 200
        counts[url] = len(captured)
        assert any(GroupRollup._meta.db_table in q["sql"] for q in captured.captured_queries), url
    # Twenty more teams, one with markup in its name, each deploying: the organisation page asks no more.
    for n in range(20):
        team = TeamFactory(name=f"<b>Team {n}</b>" if n == 0 else f"Team {n}")
        service = service_make(owner=team)
        deployment = deployment_make(
            service, built.production, State.SUCCEEDED, started=at("2026-03-05 09:00"), finished=at("2026-03-05 09:10")
        )
        tasks.rollups_refresh(deployment.pk)
    with django_assert_max_num_queries(counts["/insights/"]):
        page = client.get("/insights/", query)
    html = page.content.decode()
    assert "&lt;b&gt;Team 0&lt;/b&gt;" in html and "<b>Team 0</b>" not in html
    assert html.count('<th scope="row"') == 3 + 20  # every team, the ones without deployments too
