"""The DORA figures of the hand-made history (conftest.py), computed by hand, against the selectors."""

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from insights import bands, selectors
from insights.selectors import Scope, Window

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
WINDOW = Window(date(2026, 3, 2), date(2026, 3, 15), PARIS)


def figures(scope: Scope, window: Window = WINDOW, environments=None):  # type: ignore[no-untyped-def]
    return selectors.dora_figures(
        scope=scope, window=window, environments=environments or selectors.environments_default()
    )


def test_the_organisation_over_two_weeks_in_paris(history, django_assert_max_num_queries, is_postgres) -> None:
    # PostgreSQL: the environments, whether the rollups are built (cached a minute: a cold cache here), then one
    # query. SQLite: counts, then the recoveries for Python's percentiles.
    with django_assert_max_num_queries(3):
        org = figures(Scope("org"))
    # Counted: pay-api 4 successes + 2 failures (the cancelled one, staging and the one at 00:10 on the 16th are
    # not), ledger 2 + 1, finder 1 + 2.
    assert (org.successes, org.failures, org.deployments) == (7, 5, 12)
    assert org.days_with_success == 7 and org.share_of_days == 0.5
    assert org.per_day == 0.5 and org.per_week == 3.5
    assert org.change_fail_rate == pytest.approx(5 / 12)
    assert org.rework == 5 and org.rework_rate == pytest.approx(5 / 12)
    # Recoveries: 20 min, 1 h, 6 h, 48 h; finder's reported failure is not recovered yet.
    assert (org.recovered, org.unrecovered) == (4, 1)
    assert org.recovery_median == pytest.approx(12600)  # (1 h + 6 h) / 2
    assert org.recovery_p90 == pytest.approx(127440)  # 6 h + 0.7 × (48 h − 6 h)
    marks = org.bands
    assert marks["deployment_frequency"].key == bands.HIGH  # 0.5 a day: between once a day and once a week
    assert marks["change_fail_rate"].key == bands.MEDIUM  # 41.7 %
    assert marks["recovery_time"].key == bands.HIGH  # 3.5 h: less than a day
    # Lead times: pay-api 1 h and 24 h, ledger 0 (its commit is dated after the success), finder 30 min.
    assert org.leads == 4
    assert org.lead_median == pytest.approx(2700)  # (30 min + 1 h) / 2
    assert org.lead_p90 == pytest.approx(61560)  # 1 h + 0.7 × (24 h − 1 h)
    assert marks["lead_time"].key == bands.ELITE  # 45 minutes


def test_a_team_a_system_and_a_service(history) -> None:
    payments = figures(selectors.scope_find("team:payments"))
    assert (payments.successes, payments.failures, payments.rework, payments.days_with_success) == (6, 3, 4, 6)
    assert payments.change_fail_rate == pytest.approx(1 / 3)
    assert payments.recovery_median == pytest.approx(21600)
    assert payments.recovery_p90 == pytest.approx(142560)  # 6 h + 0.8 × 42 h
    assert payments.bands["change_fail_rate"].key == bands.MEDIUM
    assert payments.bands["deployment_frequency"].key == bands.HIGH  # 6 in 14 days
    # Lead times 0, 1 h, 24 h: exactly one hour is not "less than one hour", and the gap up to a day is High.
    assert (payments.leads, payments.lead_median) == (3, 3600) and payments.bands["lead_time"].key == bands.HIGH

    search = figures(selectors.scope_find("team:search"))
    assert (search.successes, search.failures, search.unrecovered) == (1, 2, 1)
    assert search.bands["deployment_frequency"].key == bands.MEDIUM  # once in 14 days: less than once a week
    assert search.bands["change_fail_rate"].key == bands.LOW  # 67 %
    # Exactly one hour is not "less than one hour": the edge goes to High.
    assert search.recovery_median == 3600 and search.bands["recovery_time"].key == bands.HIGH
    assert search.lead_median == 1800 and search.bands["lead_time"].key == bands.ELITE

    system = figures(selectors.scope_find("system:payments-core"))
    assert (system.successes, system.failures) == (6, 3)

    pay_api = figures(selectors.scope_find("service:pay-api"))
    assert (pay_api.successes, pay_api.failures, pay_api.rework) == (4, 2, 3)
    assert pay_api.recovery_median == pytest.approx((1200 + 21600) / 2)


def test_no_deployments_is_no_data_never_elite(history) -> None:
    quiet = figures(selectors.scope_find("team:quiet"))
    assert quiet.deployments == 0 and quiet.per_day is None and quiet.change_fail_rate is None
    assert {mark.key for mark in quiet.bands.values()} == {bands.NO_DATA}
    empty = figures(Scope("org"), Window(date(2025, 3, 2), date(2025, 3, 8), PARIS))
    assert empty.deployments == 0 and {mark.key for mark in empty.bands.values()} == {bands.NO_DATA}


def test_days_are_counted_in_the_time_zone_asked_for(history) -> None:
    utc = figures(Scope("org"), Window(date(2026, 3, 2), date(2026, 3, 15), ZoneInfo("UTC")))
    # In UTC the success at 23:30 on 1 March falls out and the one at 23:10 on 15 March falls in.
    assert utc.successes == 7 and utc.days_with_success == 6


def test_any_environment_on_request(history) -> None:
    staging = figures(Scope("org"), environments=[history.staging])
    assert (staging.successes, staging.failures) == (1, 0)
    assert staging.change_fail_rate == 0 and staging.bands["change_fail_rate"].key == bands.ELITE


def test_weekly_points(history, django_assert_max_num_queries, is_postgres) -> None:
    with django_assert_max_num_queries(2 if is_postgres else 4):  # +1 on PostgreSQL: are the rollups built?
        weekly = selectors.dora_weekly(scope=Scope("org"), window=WINDOW, environments=[history.production])
    assert [monday for monday, _ in weekly] == [date(2026, 3, 2), date(2026, 3, 9)]
    first, second = weekly[0][1], weekly[1][1]
    assert (first.successes, first.failures, first.rework, first.days) == (4, 2, 3, 7)
    assert (second.successes, second.failures, second.rework, second.days) == (3, 3, 2, 7)
    assert first.recovery_median == pytest.approx(11400) and second.recovery_median == pytest.approx(88200)


def test_weeks_cut_by_the_window_count_only_their_days_inside(history) -> None:
    window = Window(date(2026, 3, 4), date(2026, 3, 10), PARIS)  # Wednesday to Tuesday
    weekly = selectors.dora_weekly(scope=Scope("org"), window=window, environments=[history.production])
    assert [(monday, f.days) for monday, f in weekly] == [(date(2026, 3, 2), 5), (date(2026, 3, 9), 2)]


def test_breakdown_lists_every_team_with_or_without_deployments(
    history, django_assert_max_num_queries, is_postgres
) -> None:
    with django_assert_max_num_queries(3 if is_postgres else 7):  # +1 on PostgreSQL: are the rollups built?
        rows = selectors.dora_breakdown(scope=Scope("org"), window=WINDOW, environments=[history.production])
    by_slug = {scope.slug: f for scope, f in rows}
    assert list(by_slug) == ["payments", "quiet", "search"]
    assert (by_slug["payments"].successes, by_slug["payments"].recovery_median) == (6, pytest.approx(21600))
    assert by_slug["quiet"].deployments == 0
    services = selectors.dora_breakdown(
        scope=selectors.scope_find("team:payments"), window=WINDOW, environments=[history.production]
    )
    assert [(s.slug, f.deployments) for s, f in services] == [("ledger", 3), ("pay-api", 6)]


@pytest.mark.parametrize(
    ("metric", "value", "band"),
    [
        ("deployment_frequency", 1.01, bands.ELITE),
        ("deployment_frequency", 1.0, bands.HIGH),  # exactly once a day: High, not "multiple per day"
        ("deployment_frequency", 1 / 7, bands.HIGH),
        ("deployment_frequency", 1 / 7 - 1e-9, bands.MEDIUM),
        ("deployment_frequency", 1 / 30, bands.MEDIUM),
        ("deployment_frequency", 0.03, bands.LOW),
        ("deployment_frequency", 0.0, bands.LOW),  # deployed, never successfully: Low, not no data
        ("change_fail_rate", 0.0, bands.ELITE),
        ("change_fail_rate", 0.15, bands.ELITE),
        ("change_fail_rate", 0.155, bands.HIGH),  # the gap between 15 % and 16 % goes to High
        ("change_fail_rate", 0.30, bands.HIGH),
        ("change_fail_rate", 0.305, bands.MEDIUM),
        ("change_fail_rate", 0.45, bands.MEDIUM),
        ("change_fail_rate", 0.455, bands.LOW),
        ("recovery_time", 3599, bands.ELITE),
        ("recovery_time", 3600, bands.HIGH),
        ("recovery_time", 86399, bands.HIGH),
        ("recovery_time", 86400, bands.MEDIUM),
        ("recovery_time", 604800, bands.MEDIUM),
        ("recovery_time", 604801, bands.LOW),
        ("lead_time", 3599, bands.ELITE),
        ("lead_time", 7200, bands.HIGH),  # the gap between one hour and one day goes to High
        ("lead_time", 604800, bands.HIGH),
        ("lead_time", 604801, bands.MEDIUM),
        ("lead_time", 2592001, bands.LOW),
        ("recovery_time", None, bands.NO_DATA),
    ],
)
def test_bands_and_their_edges(metric: str, value: float | None, band: str) -> None:
    assert bands.band_of(metric, value).key == band


def test_bands_come_from_settings_when_set(settings) -> None:
    settings.INSIGHTS_BANDS = {"change_fail_rate": {"better": "lower", "thresholds": [("elite", 0.05, True)]}}
    settings.INSIGHTS_BAND_TABLE = "Our own"
    mark = bands.band_of("change_fail_rate", 0.10)
    assert (mark.key, mark.table) == (bands.LOW, "Our own")
