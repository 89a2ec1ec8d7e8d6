"""The fact document: every documented field, built from the catalog and the deployments in a bounded query count."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.utils import timezone

from deployments.models import State
from governance import facts
from governance.models import FreezeWindow
from monitoring.models import HealthCheck, ProbeResult
from techdocs.models import ADR, Runbook
from tests.deployments.support import release_make
from tests.factories import UserFactory, service_make

pytestmark = pytest.mark.django_db


def deployment_make(world, environment, release, *, state=State.SUCCEEDED, age_days=0.0, user=None):  # type: ignore[no-untyped-def]
    from deployments.models import Deployment

    deployment = Deployment.objects.create(
        release=release,
        service=world.service,
        environment=environment,
        strategy="rolling",
        runtime="simulated",
        requested_by=user or world.owner,
        state=state,
        finished_at=timezone.now() - timedelta(days=age_days),
    )
    Deployment.objects.filter(pk=deployment.pk).update(created_at=timezone.now() - timedelta(days=age_days))
    return deployment


def change_for(world, environment, release, **fields):  # type: ignore[no-untyped-def]
    return facts.Change(
        service=world.service,
        environment=environment,
        strategy=fields.pop("strategy", "canary"),
        version=release.version,
        commit=release.commit_sha,
        requester=fields.pop("requester", world.owner),
        **fields,
    )


def test_the_document_has_exactly_the_documented_groups_and_fields(world, production) -> None:
    release = release_make(world.service)
    document = facts.facts_build(change=change_for(world, production, release))
    sample = facts.sample_document()
    assert list(document) == [
        "service",
        "change",
        "history",
        "now",
        "freeze",
        "incidents",
        "delivery",
        "scorecards",
        "slo",
        "health",
        "flags",
    ]
    for group, value in sample.items():
        if isinstance(value, dict) and group not in facts.open_maps():  # an open map's keys are data
            assert set(document[group]) == set(value), group
    assert document["freeze"] == []
    assert document["service"]["last_ownership_review"] is None
    assert document["change"]["approvals"] == [] and document["change"]["break_glass"] is False
    assert document["service"]["orphaned"] is False


def test_the_last_ownership_review_is_the_verification_reviews_record(world, production) -> None:
    from reviews import services as reviews

    reviews.ownership_verify(service=world.service, verified_by=world.staff)
    document = facts.facts_build(change=change_for(world, production, release_make(world.service)))
    verified = world.service.ownership.verified_at
    assert document["service"]["last_ownership_review"] == verified.isoformat().replace("+00:00", "Z")


def test_service_facts_come_from_the_catalog(world, production) -> None:
    world.service.tags.create(name="pci")
    world.service.language = "go"
    world.service.save()
    Runbook.objects.create(service=world.service, slug="restart", title="Restart", last_reviewed_at=timezone.now())
    Runbook.objects.create(service=world.service, slug="failover", title="Failover")  # never reviewed: stale
    ADR.objects.create(service=world.service, number=1, title="Use Postgres")
    document = facts.facts_build(change=change_for(world, production, release_make(world.service)))
    service = document["service"]
    assert service["slug"] == "payments-api" and service["owner"] == "payments" and service["tier"] == 1
    assert service["tags"] == ["pci"] and service["language"] == "go" and service["system"] is None
    assert (service["runbooks"], service["stale_runbooks"], service["adrs"]) == (2, 1, 1)
    assert service["golden_path"] == {"name": None, "version": None, "latest": None, "behind": False}


def test_a_service_made_from_an_older_golden_path_is_behind(world, production) -> None:
    from scaffolder import registry

    path = registry.golden_path_list()[0]
    world.service.golden_path, world.service.golden_path_version = path.name, "0.0.1"
    world.service.save()
    document = facts.facts_build(change=change_for(world, production, release_make(world.service)))
    assert document["service"]["golden_path"] == {
        "name": path.name, "version": "0.0.1", "latest": path.version, "behind": True,
    }  # fmt: skip


def test_change_facts_say_where_this_release_already_succeeded(world, staging, production) -> None:
    release, other = release_make(world.service), release_make(world.service, "2.0.0")
    done = deployment_make(world, staging, release, age_days=1)
    deployment_make(world, staging, other)  # another commit: not this release
    document = facts.facts_build(change=change_for(world, production, release))
    change = document["change"]
    assert change["environment"] == {"slug": "production", "name": "Production", "protected": True, "order": 2}
    assert change["succeeded_in"] == {"staging": facts._iso(done.finished_at)}
    assert change["succeeded_in"]["staging"].endswith("Z")
    assert change["requester"] == {"username": "olivia", "platform_admin": False, "roles": ["member"]}
    assert (change["strategy"], change["version"], change["commit"]) == ("canary", "1.0.0", release.commit_sha)


def test_a_failed_deployment_of_the_release_is_no_success(world, staging, production) -> None:
    release = release_make(world.service)
    deployment_make(world, staging, release, state=State.ROLLED_BACK)
    document = facts.facts_build(change=change_for(world, production, release))
    assert document["change"]["succeeded_in"] == {}


def test_a_requester_outside_the_team_has_no_roles_and_staff_are_platform_admins(world, production) -> None:
    release = release_make(world.service)
    outsider = facts.facts_build(change=change_for(world, production, release, requester=world.outsider))
    admin = facts.facts_build(change=change_for(world, production, release, requester=world.staff))
    assert outsider["change"]["requester"]["roles"] == []
    assert admin["change"]["requester"]["platform_admin"] is True


def test_history_counts_deployments_failures_and_rollbacks_in_7_and_30_days(world, staging) -> None:
    release = release_make(world.service)
    deployment_make(world, staging, release, age_days=1)
    deployment_make(world, staging, release, state=State.ROLLED_BACK, age_days=2)
    deployment_make(world, staging, release, state=State.FAILED, age_days=10)
    deployment_make(world, staging, release, age_days=20)
    deployment_make(world, staging, release, state=State.ROLLED_BACK, age_days=40)  # too old for either
    document = facts.facts_build(change=change_for(world, staging, release))
    assert document["history"] == {
        "deployments_7d": 2, "failures_7d": 1, "rollbacks_7d": 1,
        "deployments_30d": 4, "failures_30d": 2, "rollbacks_30d": 1,
    }  # fmt: skip


def test_now_is_in_the_organisations_time_zone(world, production, settings) -> None:
    settings.GOVERNANCE = {**settings.GOVERNANCE, "ORG_TIME_ZONE": "Europe/Berlin"}
    at = datetime(2026, 3, 27, 13, 30, tzinfo=UTC)  # a Friday: 14:30 in Berlin (CET, before the DST change)
    document = facts.facts_build(change=change_for(world, production, release_make(world.service), at=at))
    assert document["now"] == {
        "timestamp": "2026-03-27T13:30:00Z", "time_zone": "Europe/Berlin", "date": "2026-03-27",
        "weekday": 5, "day": "Friday", "hour": 14, "minute": 30,
    }  # fmt: skip
    after_dst = facts.facts_build(
        change=change_for(world, production, release_make(world.service, "2"), at=at + timedelta(days=3))
    )
    assert (after_dst["now"]["day"], after_dst["now"]["hour"]) == ("Monday", 15)  # CEST from 29 March


def test_building_the_document_takes_one_query(  # type: ignore[no-untyped-def]
    world, staging, production, django_assert_num_queries
) -> None:
    release = release_make(world.service)
    for index in range(30):
        deployment_make(world, staging, release_make(world.service, f"0.{index}"), age_days=index % 20)
        Runbook.objects.create(service=world.service, slug=f"rb-{index}", title=f"Runbook {index}")
    for index in range(10):
        world.service.tags.create(name=f"tag-{index}")
    change = change_for(world, production, release, requester=UserFactory())
    for index in range(10):  # freeze windows are filtered by scope in one query, whatever their number
        FreezeWindow.objects.create(
            name=f"f{index}", time_zone="UTC", start_date=date(2026, 1, 2), start_time=time(14),
            end_date=date(2026, 1, 5), end_time=time(8), recurrence="FREQ=WEEKLY",
        ).environments.add(production)  # fmt: skip
    # Every group's reads are one statement; the SLO group reads monitoring's samples only for a service with SLOs.
    with django_assert_num_queries(1):
        document = facts.facts_build(change=change)
    assert document["history"]["deployments_30d"] == 30 and document["service"]["runbooks"] == 30
    assert len(document["service"]["tags"]) == 10


def test_a_change_named_by_slugs_is_read_with_its_document_in_one_query(  # type: ignore[no-untyped-def]
    world, staging, production, django_assert_num_queries
) -> None:
    from deployments.models import DeployTarget

    release = release_make(world.service, "v3")
    deployment_make(world, staging, release, age_days=1)
    Runbook.objects.create(service=world.service, slug="restart", title="Restart")
    world.service.tags.create(name="pci")
    DeployTarget.objects.create(service=world.service, environment=production, strategy="canary")
    FreezeWindow.objects.create(
        name="always", time_zone="UTC", start_date=date(2026, 1, 1), start_time=time(0),
        end_date=date(2099, 1, 1), end_time=time(0),
    ).environments.add(production)  # fmt: skip
    at = timezone.now()
    named = facts.Named(service="payments-api", environment="production", version="v3", requester=world.owner, at=at)
    with django_assert_num_queries(1):
        found = facts.facts_build_named(named=named)
    assert found.service.pk == world.service.pk and found.environment.pk == production.pk
    # The deploy target's strategy and the release's commit, as a Change with them would have been judged.
    assert (found.change.strategy, found.change.commit) == ("canary", release.commit_sha)
    assert found.facts == facts.facts_build(change=change_for(world, production, release, strategy="canary", at=at))
    assert found.facts["change"]["succeeded_in"] == {"staging": found.facts["change"]["succeeded_in"]["staging"]}
    assert found.facts["freeze"][0]["name"] == "always" and found.facts["service"]["tags"] == ["pci"]


@pytest.mark.postgres_only  # SQLite prepares nothing
def test_the_document_is_planned_once_and_then_only_run(world, production, settings) -> None:  # type: ignore[no-untyped-def]
    """The document's statement is prepared, and PostgreSQL keeps its generic plan after the five runs it plans for
    their values (planning it took four times as long as running it): the ids come from the statement's own row,
    bound for a Change, read from the names for a named change, so a plan for the values gains nothing."""
    from django.db import connection

    settings.DATABASE_PREPARED_STATEMENTS = True
    named = facts.Named(service="payments-api", environment="production", version="v1", strategy="canary")
    change = change_for(world, production, release_make(world.service))
    for _ in range(8):
        assert facts.facts_build_named(named=named).facts is not None
        facts.facts_build(change=change)
    with connection.cursor() as cursor:  # kept on the connection: earlier tests may have run them too
        cursor.execute(
            "SELECT left(statement, 9), max(generic_plans), max(custom_plans) FROM pg_prepared_statements"
            " WHERE statement LIKE 'SELECT (SELECT coalesce(json_agg%%' OR statement LIKE 'SELECT n.service_id%%'"
            " GROUP BY 1 ORDER BY 1"
        )
        found = cursor.fetchall()
    assert [prefix for prefix, _generic, _custom in found] == ["SELECT (S", "SELECT n."]
    assert all(generic >= 3 and custom <= 5 for _prefix, generic, custom in found), found


def test_without_prepared_statements_the_document_is_the_same(world, production, settings) -> None:  # type: ignore[no-untyped-def]
    """Behind a pooler in transaction mode (DATABASE_PREPARED_STATEMENTS=false) the same statement is sent as text."""
    change = change_for(world, production, release_make(world.service), at=timezone.now())
    prepared = facts.facts_build(change=change)
    settings.DATABASE_PREPARED_STATEMENTS = False
    assert facts.facts_build(change=change) == prepared


def test_a_change_named_by_slugs_says_what_is_missing(world, production) -> None:  # type: ignore[no-untyped-def]
    def named(**fields):  # type: ignore[no-untyped-def]
        fields = {"service": "payments-api", "environment": "production", "version": "v1", **fields}
        return facts.facts_build_named(named=facts.Named(**fields))

    assert named(service="nope") == facts.Found()
    no_environment = named(environment="mars", strategy="canary")
    assert no_environment.service.slug == "payments-api" and no_environment.environment is None
    assert no_environment.change is None and no_environment.facts is None
    no_strategy = named()  # none given, and no deploy target in production
    assert no_strategy.environment.slug == "production" and no_strategy.change is no_strategy.facts is None
    given = named(strategy="rolling", commit="b" * 40)  # no release of v1: the commit named is the one judged
    assert given.facts["change"]["strategy"] == "rolling" and given.facts["change"]["commit"] == "b" * 40
    assert given.facts["change"]["requester"]["username"] == ""
    release = release_make(world.service, "v2")
    assert named(version="v2", strategy="rolling").change.commit == release.commit_sha
    assert named(version="v2", strategy="rolling", commit="c" * 40).change.commit == "c" * 40
    assert named(strategy="rolling").change.commit == ""


def test_a_service_with_slos_adds_monitorings_two_queries(world, production, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    from monitoring import services as monitoring
    from tests.monitoring.test_slos import probe_slo

    monitoring.slo_create(user=world.owner, service=world.service, document=probe_slo())
    change = change_for(world, production, release_make(world.service))
    with django_assert_num_queries(3):  # the document's statement, the SLOs, their samples
        document = facts.facts_build(change=change)
    assert document["slo"]["count"] == 1


def test_health_says_each_environments_status_and_a_service_without_checks_costs_nothing_more(  # type: ignore[no-untyped-def]
    world, staging, production, django_assert_num_queries
) -> None:
    change = change_for(world, production, release_make(world.service))
    with django_assert_num_queries(1):  # the document's statement alone
        assert facts.facts_build(change=change)["health"] == {"count": 0, "down": [], "environments": {}}

    failing = HealthCheck.objects.create(service=world.service, environment=staging, url="http://a.example/healthz")
    for minutes in (2, 1):
        ProbeResult.objects.create(
            health_check=failing,
            checked_at=timezone.now() - timedelta(minutes=minutes),
            ok=False,
            error="answered 503, expected 200",
        )
    HealthCheck.objects.create(service=world.service, environment=production, source="replicas")
    change = change_for(world, production, release_make(world.service, "2.0.0"))
    with django_assert_num_queries(5):  # the statement, the checks, their latest results, uptime (raw and hourly)
        health = facts.facts_build(change=change)["health"]
    assert health == {
        "count": 2,
        "down": ["staging"],
        "environments": {
            "staging": {"status": "down", "source": "http", "uptime_7d": 0.0},
            "production": {"status": "unknown", "source": "replicas", "uptime_7d": None},  # never probed: not healthy
        },
    }


def test_the_document_is_plain_json(world, production) -> None:
    import json

    document = facts.facts_build(change=change_for(world, production, release_make(world.service)))
    assert json.loads(json.dumps(document)) == document


def test_service_documents_agree_with_the_change_document_in_a_constant_number_of_queries(  # type: ignore[no-untyped-def]
    world, staging, production, django_assert_num_queries
) -> None:
    from deployments.models import DeployTarget

    other = service_make(owner=world.owner_team, tier=3)
    other.tags.create(name="edge")
    Runbook.objects.create(service=world.service, slug="restart", title="Restart", last_reviewed_at=timezone.now())
    DeployTarget.objects.create(service=world.service, environment=production, strategy="canary")
    DeployTarget.objects.create(service=world.service, environment=staging, strategy="rolling")
    release = release_make(world.service)
    deployment_make(world, staging, release, age_days=2)
    check = HealthCheck.objects.create(service=world.service, environment=staging, url="http://a.example/healthz")
    ProbeResult.objects.create(health_check=check, checked_at=timezone.now(), ok=True, status_code=200, latency_ms=9)
    at = timezone.now()
    # services, tags, deploy targets, history, scores, SLOs, flags; health: checks, latest results, uptime (two)
    with django_assert_num_queries(11):
        documents = facts.service_documents(service_ids=[world.service.pk, other.pk, 0], at=at)
    assert set(documents) == {world.service.pk, other.pk}  # a service that does not exist is left out
    single = facts.facts_build(change=change_for(world, production, release, at=at))
    for group in facts.service_group_names():
        assert documents[world.service.pk][group] == single[group], group
    assert "change" not in documents[other.pk] and "freeze" not in documents[other.pk]
    assert documents[world.service.pk]["delivery"] == {
        "strategies": {"staging": "rolling", "production": "canary"},
        "protected_strategies": ["canary"],
    }
    assert documents[other.pk]["service"]["tags"] == ["edge"] and documents[other.pk]["history"]["deployments_30d"] == 0
    assert documents[world.service.pk]["service"]["runbook_last_reviewed"] is not None
    assert documents[world.service.pk]["health"] == {
        "count": 1,
        "down": [],
        "environments": {"staging": {"status": "healthy", "source": "http", "uptime_7d": 100.0}},
    }
    assert documents[other.pk]["health"] == {"count": 0, "down": [], "environments": {}}


def test_every_read_names_only_the_documented_parameters(world, production) -> None:  # type: ignore[no-untyped-def]
    import re

    bound = facts._parameters(change_for(world, production, release_make(world.service)))
    assert set(bound) == set(facts.PARAMETERS)
    # A change named by slugs reads these from the statement itself; a read names them as the others.
    assert set(facts._ID_COLUMNS) <= set(facts.PARAMETERS)
    assert set(facts._ID_COLUMNS.values()) <= set(facts._NAMED.columns)
    for name, read in facts._READS.items():
        named = set(re.findall(r"%\((\w+)\)s", read.sql))
        assert named <= set(facts.PARAMETERS), (name, named - set(facts.PARAMETERS))
        assert all(column.isidentifier() for column in read.columns), name
