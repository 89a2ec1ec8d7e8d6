"""The change-management evidence report: every production change in a period with requester, approvals, policy
decisions and versions, outcome and break-glass; as a page, CSV, JSON and API, in a constant number of queries, and
only to those who may read it."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import Deployment, State
from governance import evidence, services
from governance.models import Decision
from tests.deployments.support import release_make
from tests.factories import UserFactory, service_make

pytestmark = pytest.mark.django_db


def change_make(service, environment, *, version="1.0.0", state=State.SUCCEEDED, age_days=0, user=None, **fields):  # type: ignore[no-untyped-def]
    deployment = Deployment.objects.create(
        release=release_make(service, version), service=service, environment=environment, strategy="canary",
        runtime="simulated", requested_by=user, state=state, finished_at=timezone.now(), **fields,
    )  # fmt: skip
    Deployment.objects.filter(pk=deployment.pk).update(created_at=timezone.now() - timedelta(days=age_days))
    return deployment


@pytest.fixture
def changes(world, staging, production, policy):  # type: ignore[no-untyped-def]
    """payments-api: a judged production deploy, a reported one, one in staging and one 40 days old; search-api (the
    other team's): one production deploy."""
    policy("staging-first", "'staging' in change.succeeded_in", match="change.environment.protected")
    judged = change_make(world.service, production, user=world.owner, failure_reason='=HYPERLINK("http://x")')
    services.deployment_judge(deployment=judged)
    reported = change_make(
        world.service, production, version="1.0.1", state=State.EXTERNAL, runtime_state={"reported_status": "failed"}
    )
    change_make(world.service, staging, version="1.0.2", user=world.owner)
    change_make(world.service, production, version="0.9.0", age_days=40, user=world.owner)
    other = service_make(owner=world.other_team, slug="search-api", name="Search API")
    theirs = change_make(other, production, version="2.0.0", user=world.outsider)
    return {"judged": judged, "reported": reported, "theirs": theirs}


def test_the_report_lists_every_production_change_with_its_evidence(world, changes) -> None:  # type: ignore[no-untyped-def]
    report = evidence.report_build(user=world.staff)
    assert report.scope.kind == "organisation"
    assert [row["deployment"] for row in report.rows] == [
        changes["judged"].pk,
        changes["reported"].pk,
        changes["theirs"].pk,
    ]  # staging and the 40-day-old change are left out
    judged = report.rows[0]
    decision = Decision.objects.get(deployment=changes["judged"])
    assert judged | {"requested_at": None, "finished_at": None} == {
        "deployment": changes["judged"].pk, "url": f"/deployments/{changes['judged'].pk}/",
        "requested_at": None, "service": "payments-api", "team": "payments", "environment": "production",
        "version": "1.0.0", "commit": changes["judged"].release.commit_sha, "strategy": "canary", "source": "runway",
        "requester": "olivia", "approvals": [], "break_glass": False, "decision": decision.pk, "verdict": "deny",
        "policies": [{"policy": "staging-first", "version": 1, "version_id": decision.results[0]["version_id"],
                      "action": "deny", "outcome": "fail", "message": "staging-first failed"}],
        "outcome": "succeeded", "finished_at": None, "failure_reason": '=HYPERLINK("http://x")',
    }  # fmt: skip
    reported = report.rows[1]
    assert (reported["source"], reported["outcome"], reported["decision"], reported["requester"]) == (
        "reported", "failed", None, ""
    )  # fmt: skip
    wider = evidence.report_build(user=world.staff, since=timezone.now().date() - timedelta(days=60))
    assert len(wider.rows) == 4


def test_a_break_glass_change_is_flagged_from_its_decisions_facts(world, changes) -> None:  # type: ignore[no-untyped-def]
    decision = Decision.objects.get(deployment=changes["judged"])
    decision.facts["change"]["break_glass"] = True
    decision.save(update_fields=["facts"])
    [row] = [row for row in evidence.report_build(user=world.staff).rows if row["deployment"] == changes["judged"].pk]
    assert row["break_glass"] is True


def test_the_report_takes_the_same_number_of_queries_for_3_or_30_changes(world, production, changes) -> None:  # type: ignore[no-untyped-def]
    def counted() -> int:
        with CaptureQueriesContext(connection) as queries:
            evidence.report_build(user=world.owner, team="payments")
        return len(queries)

    counted()  # the first asks for the content types and permissions once per process
    few = counted()
    for index in range(27):
        deployment = change_make(world.service, production, version=f"3.{index}", user=world.owner)
        services.deployment_judge(deployment=deployment)
    assert counted() == few <= 4  # the team, the scope check, the changes (with decisions): nothing per row


@pytest.mark.parametrize(
    ("role", "scope", "expected"),
    [
        ("owner", "", {"payments-api"}), ("owner", "team=payments", {"payments-api"}), ("owner", "team=search", 403),
        ("owner", "service=search-api", 403), ("outsider", "", {"search-api"}), ("outsider", "team=payments", 403),
        ("auditor", "", {"payments-api", "search-api"}), ("auditor", "team=search", {"search-api"}),
        ("staff", "service=payments-api", {"payments-api"}), ("anonymous", "", 302),
    ],
)  # fmt: skip
def test_permission_matrix_for_the_report_page_downloads_and_api(
    client, api_client, world, changes, role, scope, expected
) -> None:  # type: ignore[no-untyped-def]
    user = None
    if role == "auditor":
        user = UserFactory(username="audrey")
        user.user_permissions.add(Permission.objects.get(codename="view_evidence"))
    elif role != "anonymous":
        user = getattr(world, role)
    if user is not None:
        client.force_login(user)
        api_client.force_authenticate(user)
    page = client.get(f"/governance/evidence/?{scope}")
    as_csv = client.get(f"/governance/evidence/export.csv?{scope}")
    as_json = client.get(f"/governance/evidence/export.json?{scope}")
    api = api_client.get(f"/api/v1/evidence/?{scope}")
    if expected == 302:
        assert (page.status_code, as_csv.status_code, as_json.status_code) == (302, 302, 302)
        assert api.status_code in (401, 403)
        return
    if expected == 403:
        assert (page.status_code, as_csv.status_code, as_json.status_code, api.status_code) == (403, 403, 403, 403)
        return
    assert page.status_code == 200 and as_csv.status_code == 200 and api.status_code == 200
    assert {row["service"] for row in api.json()["changes"]} == expected
    assert {row["service"] for row in as_json.json()["changes"]} == expected
    lines = list(csv.DictReader(io.StringIO(b"".join(as_csv.streaming_content).decode())))
    assert {line["service"] for line in lines} == expected
    text = page.content.decode()
    for slug in {"payments-api", "search-api"} - expected:
        assert slug not in text.split('id="evidence-results"')[1]


def test_the_csv_is_safe_to_open_in_a_spreadsheet_and_names_policy_versions(client, world, changes) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.staff)
    response = client.get("/governance/evidence/export.csv?service=payments-api")
    assert response["Content-Disposition"].startswith('attachment; filename="runway-evidence-')
    [judged, reported] = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert judged["failure_reason"] == '\'=HYPERLINK("http://x")'  # never a formula
    assert judged["policies"] == "staging-first v1 deny: fail"
    assert (judged["break_glass"], judged["approvals"], judged["verdict"]) == ("no", "", "deny")
    assert reported["source"] == "reported"


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ("since=2026-03-02&until=2026-03-01", "since", "on or before"),
        ("since=2024-01-01&until=2026-01-01", "since", "at most 366 days"),
        ("since=yesterday", "since", "wrong format"),
        ("service=nope", "service", "No service called nope"),
        ("team=%00", "team", ""),
    ],
)
def test_bad_periods_and_scopes_are_field_errors(client, api_client, world, query, field, says) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.staff)
    response = api_client.get(f"/api/v1/evidence/?{query}")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert says in str(response.json()[field])
    client.force_login(world.staff)
    page = client.get(f"/governance/evidence/?{query}")
    assert page.status_code == 200 and 'role="alert"' in page.content.decode()
    assert client.get(f"/governance/evidence/export.csv?{query}").status_code == 400
