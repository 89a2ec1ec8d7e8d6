"""Evaluation counts (OFREP answers counted in the process, pushed to Redis, flushed into daily rows by the beat task)
and flag debt: the staleness rules at their boundaries, the stale list, the flag page's counts, deleting a flag."""

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from catalog.models import Service
from deployments.models import Environment
from flags import counts, services, tasks, usage
from flags.models import EvaluationCount, Flag, FlagSetting
from tests.flags.conftest import Shop

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def empty_counts() -> None:
    """Nothing gathered by an earlier test (this process's buffer, the shared hash) reaches this one."""
    counts.take()
    counts.hash_drain()


def _evaluate(client, key: str, flag_key: str, context: dict | None = None, etag: str = ""):  # type: ignore[no-untyped-def]
    path = f"/ofrep/v1/evaluate/flags/{flag_key}" if flag_key else "/ofrep/v1/evaluate/flags"
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} | ({"HTTP_IF_NONE_MATCH": etag} if etag else {})
    body = {"context": context if context is not None else {"targetingKey": "user-1"}}
    return client.post(path, body, content_type="application/json", **headers)


def _rows(flag: Flag) -> dict[tuple[str, str], int]:
    return {(row.environment.slug, row.variant): row.count for row in EvaluationCount.objects.filter(flag=flag)}


# Counting and flushing, on the real Redis


def test_evaluations_are_counted_by_variant_and_flushed_into_daily_rows(client, shop: Shop) -> None:
    services.setting_update(actor=None, flag=shop.flag, environment=shop.production, rollout={"on": 50, "off": 50})
    served = [_evaluate(client, shop.key, "new-checkout", {"targetingKey": f"user-{i}"}).json() for i in range(40)]
    assert _evaluate(client, shop.key, "no-such-flag").status_code == 404  # not counted
    counts.push()
    expected = {("production", v): sum(1 for s in served if s["variant"] == v) for v in ("on", "off")}
    assert all(expected.values())  # both variants were served

    assert tasks.flush_evaluation_counts() == 40
    assert _rows(shop.flag) == expected
    assert EvaluationCount.objects.filter(flag=shop.flag).values_list("day", flat=True).distinct().get() == date.today()
    setting = FlagSetting.objects.get(flag=shop.flag, environment=shop.production)
    assert setting.last_evaluated_at is not None and (time.time() - setting.last_evaluated_at.timestamp()) < 60
    assert counts.hash_drain() == ({}, {})  # the flush emptied the hash

    _evaluate(client, shop.key, "new-checkout", {"targetingKey": "user-0"})
    counts.push()
    assert tasks.flush_evaluation_counts() == 1  # a later flush adds to the same day's row
    assert sum(_rows(shop.flag).values()) == 41
    assert tasks.flush_evaluation_counts() == 0  # nothing new: a redelivered task changes nothing
    assert sum(_rows(shop.flag).values()) == 41


def test_an_answer_without_a_variant_counts_as_the_code_default(client, shop: Shop) -> None:
    services.kill(actor=None, flag=shop.flag)
    assert _evaluate(client, shop.key, "new-checkout").json()["reason"] == "DISABLED"
    counts.push()
    tasks.flush_evaluation_counts()
    assert _rows(shop.flag) == {("production", ""): 1}


def test_bulk_answers_count_every_flag_and_a_304_marks_the_set_as_used(client, shop: Shop) -> None:
    second = services.flag_create(actor=None, service=shop.flag.service, key="dark-mode")
    first = _evaluate(client, shop.key, "")
    assert first.status_code == 200
    counts.push()
    tasks.flush_evaluation_counts()
    assert _rows(shop.flag) == {("production", "off"): 1}
    assert _rows(second) == {("production", ""): 1}  # off in production: the code default
    FlagSetting.objects.update(last_evaluated_at=None)

    assert _evaluate(client, shop.key, "", etag=first["ETag"]).status_code == 304
    counts.push()
    tasks.flush_evaluation_counts()
    assert sum(_rows(shop.flag).values()) == 1  # nothing evaluated, so nothing counted...
    used = FlagSetting.objects.filter(environment=shop.production, last_evaluated_at__isnull=False)
    assert set(used.values_list("flag__key", flat=True)) == {"new-checkout", "dark-mode"}  # ...but both in use
    assert not FlagSetting.objects.filter(environment=shop.staging, last_evaluated_at__isnull=False).exists()


def test_the_process_pushes_its_counts_by_itself(client, shop: Shop) -> None:
    _evaluate(client, shop.key, "new-checkout")
    deadline = time.monotonic() + 10
    gathered: dict[str, int] = {}
    while time.monotonic() < deadline and not gathered:
        time.sleep(0.2)
        gathered, _seen = counts.hash_drain()
    assert list(gathered.values()) == [1]


def test_a_later_moment_is_never_moved_back(shop: Shop) -> None:
    service_id, env_id = shop.flag.service_id, shop.production.pk
    field = f"t|{service_id}|{env_id}|new-checkout"
    counts.hash_add({}, {field: 2_000_000_000})
    counts.hash_add({}, {field: 1_000_000_000})  # a slow process's older moment
    assert counts.hash_drain()[1] == {field: 2_000_000_000}


def test_a_failed_write_puts_the_counts_back(shop: Shop, monkeypatch) -> None:
    field = f"c|2026-06-01|{shop.flag.service_id}|{shop.production.pk}|new-checkout|on"
    counts.hash_add({field: 5}, {})

    def refuse(**kwargs: object) -> None:
        raise RuntimeError("database away")

    monkeypatch.setattr(counts, "evaluation_counts_write", refuse)
    with pytest.raises(RuntimeError):
        tasks.flush_evaluation_counts()
    monkeypatch.undo()
    assert tasks.flush_evaluation_counts() == 5
    assert _rows(shop.flag) == {("production", "on"): 5}


def test_counts_of_flags_deleted_since_are_dropped(shop: Shop) -> None:
    field = f"c|2026-06-01|{shop.flag.service_id}|{shop.production.pk}|gone-flag|on"
    counts.evaluation_counts_write(counts={field: 3}, seen={f"t|{shop.flag.service_id}|{shop.production.pk}|gone": 1})
    assert not EvaluationCount.objects.exists()


# The staleness rules, at their boundaries


def _aged(flag: Flag, *, created: timedelta, changed: timedelta) -> Flag:
    Flag.objects.filter(pk=flag.pk).update(created_at=NOW - created, updated_at=NOW - changed)
    return Flag.objects.get(pk=flag.pk)


def _debt(flag: Flag) -> usage.Debt | None:
    return usage.flag_debt(flag, FlagSetting.objects.filter(flag=flag), now=NOW)


def test_a_flag_not_evaluated_for_30_days_is_stale(shop: Shop) -> None:
    just = timedelta(days=30)
    assert _debt(_aged(shop.flag, created=just - timedelta(seconds=1), changed=timedelta(0))) is None
    debt = _debt(_aged(shop.flag, created=just, changed=timedelta(0)))
    assert debt is not None and debt.reason == "unused" and debt.summary.startswith("Never evaluated")

    flag = _aged(shop.flag, created=timedelta(days=400), changed=timedelta(0))
    FlagSetting.objects.filter(flag=flag, environment=shop.staging).update(last_evaluated_at=NOW - just)
    FlagSetting.objects.filter(flag=flag, environment=shop.production).update(last_evaluated_at=NOW - just * 2)
    debt = _debt(flag)
    assert debt is not None and debt.summary == "Not evaluated for 30 days"
    FlagSetting.objects.filter(flag=flag, environment=shop.staging).update(
        last_evaluated_at=NOW - just + timedelta(seconds=1)
    )
    assert _debt(flag) is None  # evaluated somewhere within the 30 days


def _serve_everywhere(shop: Shop, **setting: object) -> None:
    for environment in (shop.staging, shop.production):
        services.setting_update(actor=None, flag=shop.flag, environment=environment, enabled=True, **setting)
    FlagSetting.objects.filter(flag=shop.flag).update(last_evaluated_at=NOW)


def test_a_temporary_flag_serving_one_variant_everywhere_for_14_days_is_stale(shop: Shop) -> None:
    _serve_everywhere(shop, default_variant="on")
    fortnight = timedelta(days=14)
    assert _debt(_aged(shop.flag, created=timedelta(days=90), changed=fortnight - timedelta(seconds=1))) is None
    debt = _debt(_aged(shop.flag, created=timedelta(days=90), changed=fortnight))
    assert debt is not None and (debt.reason, debt.variant) == ("launched", "on")
    assert debt.summary == "Serves on to everyone, everywhere, unchanged for 14 days"

    Flag.objects.filter(pk=shop.flag.pk).update(temporary=False)  # a permanent flag may serve one answer for years
    assert _debt(_aged(shop.flag, created=timedelta(days=90), changed=fortnight)) is None


@pytest.mark.parametrize(
    ("setting", "stale"),
    [
        ({"rollout": {"on": 100, "off": 0}}, True),  # a finished rollout
        ({"rollout": {"on": 90, "off": 10}}, False),
        ({"rules": [{"name": "staff", "when": [{"attribute": "e", "op": "eq", "value": 1}], "variant": "on"}]}, True),
        ({"rules": [{"name": "staff", "when": [{"attribute": "e", "op": "eq", "value": 1}], "variant": "off"}]}, False),
    ],
)
def test_one_variant_means_every_rule_and_share_serves_it(shop: Shop, setting: dict, stale: bool) -> None:
    _serve_everywhere(shop, default_variant="on", **setting)
    assert (_debt(_aged(shop.flag, created=timedelta(days=90), changed=timedelta(days=20))) is not None) is stale


def test_environments_serving_different_answers_are_not_stale(shop: Shop) -> None:
    _serve_everywhere(shop, default_variant="on")
    services.setting_update(actor=None, flag=shop.flag, environment=shop.staging, enabled=False)
    assert _debt(_aged(shop.flag, created=timedelta(days=90), changed=timedelta(days=20))) is None


# Pages


def test_the_service_page_and_the_stale_list_show_debt_with_guidance(client, world, django_assert_max_num_queries):  # type: ignore[no-untyped-def]
    Environment.objects.create(name="Production", slug="production", order=1)
    stale = services.flag_create(actor=None, service=world.service, key="old-banner")
    fresh = services.flag_create(actor=None, service=world.service, key="new-banner")
    Flag.objects.filter(pk=stale.pk).update(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    other = Service.objects.create(slug="search-api", name="Search API", owner=world.other_team)
    services.flag_create(actor=None, service=other, key="other-old")
    Flag.objects.filter(key="other-old").update(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    client.force_login(world.outsider)

    page = client.get(reverse("catalog:service-detail", args=[world.service.slug])).content.decode()
    assert "1 stale flag" in page and "badge-stale" in page
    with django_assert_max_num_queries(8):
        listed = client.get(reverse("flags:stale")).content.decode()
    assert "old-banner" in listed and "other-old" in listed and fresh.key not in listed
    assert "Never evaluated" in listed and "Removing a flag" in listed
    mine = client.get(reverse("flags:stale") + "?team=payments").content.decode()
    assert "old-banner" in mine and "other-old" not in mine
    one = client.get(reverse("flags:stale") + f"?service={other.slug}").content.decode()
    assert "other-old" in one and "old-banner" not in one
    assert client.get(reverse("flags:stale") + "?team=%00").status_code == 200


def test_the_stale_list_needs_a_sign_in(client, db) -> None:
    assert client.get(reverse("flags:stale")).status_code == 302


def test_the_flag_page_shows_counts_by_environment_and_variant(client, world, shop: Shop) -> None:
    today = date.today()
    for day, variant, count in [(today, "on", 30), (today, "off", 10), (today - timedelta(days=3), "on", 5)]:
        EvaluationCount.objects.create(
            flag=shop.flag, environment=shop.production, day=day, variant=variant, count=count
        )
    EvaluationCount.objects.create(
        flag=shop.flag, environment=shop.production, day=today - timedelta(days=40), variant="on", count=999
    )
    client.force_login(world.outsider)
    page = client.get(reverse("flags:flag-detail", args=["checkout", "new-checkout"])).content.decode()
    assert '<strong class="evaluation-total">45</strong>' in page  # the 40-day-old row is outside the chart
    assert 'data-variant="on">35<' in page and 'data-variant="off">10<' in page
    assert "77.8" in page  # on's share


@pytest.mark.parametrize(("role", "expected"), [("owner", 302), ("outsider", 403), ("staff", 302), ("anonymous", 302)])
def test_only_owners_delete_a_flag_after_confirming(client, world, role, expected) -> None:
    Environment.objects.create(name="Production", slug="production", order=1)
    flag = services.flag_create(actor=None, service=world.service, key="old-banner")
    if role != "anonymous":
        client.force_login(getattr(world, role))
    url = reverse("flags:flag-delete", args=[world.service.slug, flag.key])
    if role in ("owner", "staff"):
        assert "Delete the flag" in client.get(url).content.decode()
        assert client.post(url).status_code == 200  # no confirmation: asked again, nothing deleted
        assert Flag.objects.filter(pk=flag.pk).exists()
    response = client.post(url, {"confirmed": "yes"})
    assert response.status_code == expected
    deleted = not Flag.objects.filter(pk=flag.pk).exists()
    assert deleted is (role in ("owner", "staff"))
    assert AuditEvent.objects.filter(action="flag.deleted").exists() is deleted


def test_policies_and_scorecards_read_flag_debt_as_a_fact(world, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    from governance import facts
    from tests.governance.test_facts import change_for, release_make

    production = Environment.objects.create(name="Production", slug="production", order=1)
    change = change_for(world, production, release_make(world.service))
    with django_assert_num_queries(1):  # no flags: nothing beyond the document's one statement
        assert facts.facts_build(change=change)["flags"] == {"count": 0, "stale": 0, "stale_keys": []}
    services.flag_create(actor=None, service=world.service, key="old-banner")
    services.flag_create(actor=None, service=world.service, key="new-banner")
    Flag.objects.filter(key="old-banner").update(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    bare = Service.objects.create(slug="bare", name="Bare", owner=world.other_team)
    documents = facts.service_documents(service_ids=[world.service.pk, bare.pk])
    assert documents[world.service.pk]["flags"] == {"count": 2, "stale": 1, "stale_keys": ["old-banner"]}
    assert documents[bare.pk]["flags"] == {"count": 0, "stale": 0, "stale_keys": []}
    with django_assert_num_queries(3):  # the statement, the flags, their settings
        assert facts.facts_build(change=change)["flags"] == documents[world.service.pk]["flags"]


@pytest.mark.django_db(transaction=True)
def test_without_redis_a_process_writes_its_counts_to_the_database_itself(settings, shop: Shop) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "counts"}}
    counts.record(shop.flag.service_id, shop.production.pk, [("new-checkout", "on")] * 3, whole_set=False)
    counts.push()
    assert _rows(shop.flag) == {("production", "on"): 3}
    assert FlagSetting.objects.get(flag=shop.flag, environment=shop.production).last_evaluated_at is not None
    assert counts.evaluation_counts_flush() == 0  # beat's task finds no hash to move, and no error


def test_a_flag_on_in_a_protected_environment_is_not_deleted(client, world, shop: Shop) -> None:
    """Deleting never skips the deploy policies that judge production changes, nor changes what production serves."""
    client.force_login(world.staff)
    url = reverse("flags:flag-delete", args=["checkout", "new-checkout"])
    response = client.post(url, {"confirmed": "yes"}, follow=True)
    assert "is on in Production: turn it off there first" in response.content.decode()
    assert Flag.objects.filter(pk=shop.flag.pk).exists() and not AuditEvent.objects.filter(action="flag.deleted")
    services.kill(actor=None, flag=shop.flag)
    assert client.post(url, {"confirmed": "yes"}).status_code == 302
    assert not Flag.objects.filter(pk=shop.flag.pk).exists()
