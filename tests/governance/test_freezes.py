"""Freeze windows: wall-clock times across DST changes, scopes, RRULE validation, who may change them, the calendar,
and the starter policy that denies production deploys during one."""

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError

from audit.models import AuditEvent
from catalog.models import System
from governance import facts, freezes, services, sync
from governance.models import FreezeWindow
from tests.deployments.support import release_make, target_make

pytestmark = pytest.mark.django_db

WEEKEND = {  # every Friday 14:00 to Monday 08:00 on London's clock (GMT in winter, BST in summer)
    "name": "Weekend freeze",
    "time_zone": "Europe/London",
    "start_date": date(2026, 1, 2),
    "start_time": time(14),
    "end_date": date(2026, 1, 5),
    "end_time": time(8),
    "recurrence": "FREQ=WEEKLY;BYDAY=FR",
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def in_force(window: FreezeWindow, at: datetime) -> bool:
    return freezes.Times.of(window).in_force(at) is not None


def test_a_recurring_window_keeps_its_local_times_across_both_dst_changes(world) -> None:
    window = services.freeze_window_save(user=world.staff, **WEEKEND)
    # Spring: the clocks go forward on Sunday 29 March 2026. Friday 14:00 GMT is 14:00Z; Monday 08:00 BST is 07:00Z.
    assert not in_force(window, utc(2026, 3, 27, 13, 59))
    assert in_force(window, utc(2026, 3, 27, 14, 0))
    assert in_force(window, utc(2026, 3, 30, 6, 59))
    assert not in_force(window, utc(2026, 3, 30, 7, 0))
    # Autumn: the clocks go back on Sunday 25 October 2026. Friday 14:00 BST is 13:00Z; Monday 08:00 GMT is 08:00Z.
    assert not in_force(window, utc(2026, 10, 23, 12, 59))
    assert in_force(window, utc(2026, 10, 23, 13, 0))
    assert in_force(window, utc(2026, 10, 26, 7, 59))
    assert not in_force(window, utc(2026, 10, 26, 8, 0))
    # In between (a Wednesday), nothing is frozen.
    assert not in_force(window, utc(2026, 10, 21, 12, 0))


def test_a_one_off_window_has_exact_bounds_in_its_zone(world) -> None:
    window = services.freeze_window_save(
        user=world.staff,
        name="Year end",
        time_zone="America/New_York",
        start_date=date(2026, 12, 24),
        start_time=time(0),
        end_date=date(2027, 1, 2),
        end_time=time(0),
    )
    assert not in_force(window, utc(2026, 12, 24, 4, 59))  # 23:59 in New York, EST is UTC-5
    assert in_force(window, utc(2026, 12, 24, 5, 0))
    assert in_force(window, utc(2027, 1, 2, 4, 59))
    assert not in_force(window, utc(2027, 1, 2, 5, 0))


def test_the_freeze_fact_lists_the_windows_in_force_for_the_service_and_environment(world, staging, production) -> None:
    release = release_make(world.service)
    other_system = System.objects.create(slug="search", name="Search", owner=world.other_team)
    everywhere = {**WEEKEND, "recurrence": "", "start_date": date(2026, 1, 9), "end_date": date(2026, 1, 12)}
    services.freeze_window_save(user=world.staff, **{**everywhere, "name": "Organisation-wide"})
    services.freeze_window_save(
        user=world.staff, **{**everywhere, "name": "Production only"}, environments=[production]
    )
    services.freeze_window_save(user=world.staff, **{**everywhere, "name": "Tier 1"}, tiers=[1])
    services.freeze_window_save(user=world.staff, **{**everywhere, "name": "Tier 3"}, tiers=[3])
    services.freeze_window_save(user=world.staff, **{**everywhere, "name": "Payments"}, teams=[world.owner_team])
    services.freeze_window_save(user=world.staff, **{**everywhere, "name": "Search team"}, teams=[world.other_team])
    services.freeze_window_save(user=world.staff, **{**everywhere, "name": "Search system"}, systems=[other_system])
    disabled = services.freeze_window_save(user=world.staff, **{**everywhere, "name": "Off"}, enabled=False)
    assert not disabled.enabled

    def frozen_by(environment, at):  # type: ignore[no-untyped-def]
        change = facts.Change(
            service=world.service, environment=environment, strategy="canary", version="v1", commit=release.commit_sha
        )
        change.at = at
        return sorted(entry["name"] for entry in facts.facts_build(change=change)["freeze"])

    friday = utc(2026, 1, 9, 15, 0)
    assert frozen_by(production, friday) == ["Organisation-wide", "Payments", "Production only", "Tier 1"]
    assert frozen_by(staging, friday) == ["Organisation-wide", "Payments", "Tier 1"]
    assert frozen_by(production, utc(2026, 1, 12, 8, 0)) == []  # Monday 08:00 GMT: over
    entry = facts_entry = None
    change = facts.Change(service=world.service, environment=production, strategy="canary", version="v1")
    change.at = friday
    for facts_entry in facts.facts_build(change=change)["freeze"]:
        if facts_entry["name"] == "Production only":
            entry = facts_entry
    assert entry == {
        "name": "Production only",
        "reason": "",
        "recurring": False,
        "time_zone": "Europe/London",
        "starts_at": "2026-01-09T14:00:00Z",
        "ends_at": "2026-01-12T08:00:00Z",
        "ends_local": "2026-01-12 08:00 Europe/London",
    }
    assert set(entry) == set(facts.sample_document()["freeze"][0])


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"recurrence": "FREQ=HOURLY"}, "recurrence", "FREQ=HOURLY is not allowed"),
        ({"recurrence": "FREQ=WEEKLY;BYDAY=XX"}, "recurrence", "does not parse"),
        ({"recurrence": "BYDAY=FR"}, "recurrence", "exactly one FREQ"),
        ({"recurrence": "FREQ=WEEKLY;DTSTART=20260101T000000"}, "recurrence", "Leave DTSTART out"),
        ({"recurrence": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "recurrence", "never occurs"),
        ({"recurrence": "FREQ=DAILY"}, "end_time", "longer than the 1 day, 0:00:00 between two occurrences"),
        ({"recurrence": "FREQ=WEEKLY;BYHOUR=3"}, "recurrence", "BYHOUR is not supported"),
        ({"recurrence": "FREQ=WEEKLY\nRDATE:20260101"}, "recurrence", "one line"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "is not a time zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone", "is not a time zone"),
        ({"end_date": date(2026, 1, 2), "end_time": time(13)}, "end_time", "must end after it starts"),
        ({"tiers": [7]}, "tiers", "Tiers are 1 to 4"),
    ],
)
def test_bad_windows_are_field_errors_saying_what_to_fix(world, changes, field, says) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as caught:
        services.freeze_window_save(user=world.staff, **{**WEEKEND, **changes})
    assert field in caught.value.message_dict, caught.value.message_dict
    assert says in " ".join(caught.value.message_dict[field])
    assert not FreezeWindow.objects.exists()


def test_only_platform_admins_change_freeze_windows_and_every_change_is_audited(world, production) -> None:
    with pytest.raises(PermissionDenied):
        services.freeze_window_save(user=world.owner, **WEEKEND)
    window = services.freeze_window_save(user=world.staff, **WEEKEND)
    with pytest.raises(PermissionDenied):
        services.freeze_window_delete(user=world.owner, window=window)
    services.freeze_window_save(
        user=world.staff, window=window, **{**WEEKEND, "start_time": time(12)}, environments=[production]
    )
    created, changed = AuditEvent.objects.filter(action__startswith="freeze.").order_by("pk")
    assert (
        created.action == "freeze.created" and created.before is None and created.after["starts"] == "2026-01-02 14:00"
    )
    assert changed.action == "freeze.changed"
    assert (changed.before["starts"], changed.after["starts"]) == ("2026-01-02 14:00", "2026-01-02 12:00")
    assert (changed.before["environments"], changed.after["environments"]) == ([], ["production"])
    services.freeze_window_delete(user=world.staff, window=window)
    deleted = AuditEvent.objects.get(action="freeze.deleted")
    assert deleted.before["name"] == "Weekend freeze" and not FreezeWindow.objects.exists()


def test_the_starter_policy_denies_a_production_deploy_in_a_freeze_with_its_message(
    api_client, world, staging, production
) -> None:
    report = sync.policy_sync(root=Path(settings.GOVERNANCE["POLICIES_DIR"]) / "freeze.yaml")
    assert report.errors == [] and report.created == ["no-production-deploys-in-a-freeze"]
    target_make(world.service, production, strategy="canary")
    target_make(world.service, staging, strategy="canary")
    today = datetime.now(UTC).date()
    services.freeze_window_save(
        user=world.staff, name="Incident review", time_zone="UTC", start_date=today - timedelta(days=1),
        start_time=time(0), end_date=today + timedelta(days=2), end_time=time(0), environments=[production],
    )  # fmt: skip
    api_client.force_authenticate(world.owner)
    body = {"service": "payments-api", "environment": "production", "version": "v1"}
    answer = api_client.post("/api/v1/policy-checks/", body, format="json").json()
    assert answer["allowed"] is False
    [result] = answer["results"]
    assert result["message"] == (
        f"Production is frozen (Incident review) until {today + timedelta(days=2):%Y-%m-%d} 00:00 UTC; "
        "only a break-glass deploy may go ahead."
    )
    staging_answer = api_client.post("/api/v1/policy-checks/", {**body, "environment": "staging"}, format="json")
    assert staging_answer.json()["allowed"] is True


def _login(client, world, role):  # type: ignore[no-untyped-def]
    if role != "anonymous":
        client.force_login(getattr(world, role))


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("owner", 200, 403), ("outsider", 200, 403), ("staff", 200, 200), ("anonymous", 302, 302)],
)
def test_permission_matrix_for_freeze_pages(client, world, role, read, write) -> None:  # type: ignore[no-untyped-def]
    window = FreezeWindow.objects.create(
        name="Existing", time_zone="UTC", start_date=date(2026, 1, 2), start_time=time(14),
        end_date=date(2026, 1, 5), end_time=time(8),
    )  # fmt: skip
    _login(client, world, role)
    assert client.get("/governance/freezes/").status_code == read
    assert client.get("/governance/freezes/new/").status_code == write
    assert client.get(f"/governance/freezes/{window.pk}/edit/").status_code == write
    posted = client.post(f"/governance/freezes/{window.pk}/delete/")  # unconfirmed: a page that asks
    assert posted.status_code == write
    assert FreezeWindow.objects.filter(pk=window.pk).exists()
    confirmed = client.post(f"/governance/freezes/{window.pk}/delete/", {"confirmed": "yes"})
    assert confirmed.status_code == {200: 302}.get(write, write)
    assert FreezeWindow.objects.filter(pk=window.pk).exists() == (role != "staff")
    created = client.post("/governance/freezes/new/", {"name": "x", "time_zone": "UTC"})
    assert created.status_code == write  # staff: the form again, with its errors


def test_the_form_shows_rrule_errors_on_the_field_as_you_type(client, world) -> None:
    client.force_login(world.staff)
    form = {
        "name": "Weekend freeze", "time_zone": "Europe/London", "start_date": "2026-01-02", "start_time": "14:00",
        "end_date": "2026-01-05", "end_time": "08:00", "recurrence": "FREQ=MINUTELY",
    }  # fmt: skip
    typed = client.post("/governance/freezes/new/", {**form, "_validate": "recurrence"}, HTTP_HX_REQUEST="true")
    assert "FREQ=MINUTELY is not allowed for a freeze" in typed.content.decode()
    saved = client.post("/governance/freezes/new/", {**form, "recurrence": "RRULE:freq=weekly;byday=fr", "tiers": [1]})
    assert saved.status_code == 302
    window = FreezeWindow.objects.get()
    assert (window.recurrence, window.tiers, window.created_by) == ("FREQ=WEEKLY;BYDAY=FR", [1], world.staff)


def test_the_calendar_shows_eight_weeks_with_each_frozen_day(client, world, django_assert_max_num_queries) -> None:
    for index in range(5):
        services.freeze_window_save(user=world.staff, **{**WEEKEND, "name": f"Weekend freeze {index}"})
    client.force_login(world.owner)
    with django_assert_max_num_queries(12):
        page = client.get("/governance/freezes/")
    text = page.content.decode()
    assert text.count('<td class="frozen') == 8 * 4  # Friday to Monday, every week (this week's and the 7 after)
    assert text.count("<tr>") >= 8
    assert "Weekend freeze 4" in text and "repeats: <code>FREQ=WEEKLY;BYDAY=FR</code>" in text
    assert "New freeze window" not in text  # only admins see it
