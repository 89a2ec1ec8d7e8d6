"""Bad input never makes a 5xx: deep JSON, NUL bytes in query parameters and slugs, deleting what history protects;
and what the API returns is what its schema says."""

import json

import pytest
from django.db import connection
from django_filters import FilterSet
from rest_framework.test import APIClient

from deployments.models import Environment

DEEP_JSON = "[" * 100_000
NUL = "a\x00b"


@pytest.fixture
def admin_api(world) -> APIClient:  # type: ignore[no-untyped-def]
    api = APIClient()
    api.force_authenticate(world.staff)
    return api


@pytest.fixture
def staging(db) -> Environment:  # type: ignore[no-untyped-def]
    return Environment.objects.create(name="Staging", slug="staging", order=1)


def _deploy_reported(api: APIClient) -> None:
    body = {
        "service": "payments-api",
        "environment": "staging",
        "version": "1.0.0",
        "commit_sha": "a" * 40,
        "status": "succeeded",
    }
    assert api.post("/api/v1/deploy-events/", body, format="json").status_code == 201


# Deep JSON bodies


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/services/"),
        ("patch", "/api/v1/services/payments-api/"),
        ("post", "/api/v1/teams/"),
        ("post", "/api/v1/deployments/"),
        ("post", "/api/v1/deploy-events/"),
        ("post", "/api/v1/scaffold-runs/"),
        ("post", "/api/v1/runbooks/"),
    ],
)
def test_deeply_nested_json_is_a_400(admin_api, method, path) -> None:
    response = getattr(admin_api, method)(path, DEEP_JSON, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "nested" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (DEEP_JSON.encode(), "nested too deeply"),
        (("[" * 70 + "]" * 70).encode(), "nested too deeply"),
        (json.dumps({"step": "prepare", "status": "succeeded", "message": NUL}).encode(), "Null characters"),
        (json.dumps({"step": "prepare", "status": "succeeded", "extra": {NUL: 1}}).encode(), "Null characters"),
    ],
)
def test_the_webhook_callback_refuses_deep_or_nul_json_as_a_field_error(body, reason) -> None:
    from django.core.exceptions import ValidationError

    from deployments import webhooks

    with pytest.raises(ValidationError, match=reason) as refused:
        webhooks.report_parse(body)
    assert set(refused.value.message_dict) == {"body"}


@pytest.mark.parametrize("path", ["/api/v1/services/", "/api/v1/teams/", "/api/v1/deploy-events/"])
def test_a_form_body_with_too_many_fields_is_a_json_400_that_says_to_send_json(admin_api, path) -> None:
    body = "&".join(f"field{i}=1" for i in range(1_500))
    response = admin_api.post(path, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "as JSON" in response.json()["detail"]


def test_a_body_over_the_upload_limit_is_a_413(admin_api, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = "&".join(f"name={'x' * 100}" for _ in range(200))
    response = admin_api.post("/api/v1/teams/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response.json()["detail"] == "The request body is too large."


def test_json_nested_deeper_than_the_limit_is_a_400(admin_api) -> None:
    body = {"golden_path": "python-worker", "owner": "payments", "answers": json.loads("[" * 70 + "]" * 70)}
    response = admin_api.post("/api/v1/scaffold-runs/", body, format="json")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


def test_moderately_nested_json_still_parses(admin_api) -> None:
    body = {"golden_path": "python-worker", "owner": "payments", "answers": {"a": json.loads("[" * 50 + "]" * 50)}}
    response = admin_api.post("/api/v1/scaffold-runs/", body, format="json")
    assert response.status_code == 400 and "nested" not in json.dumps(response.json())


# NUL bytes in query parameters: a 400 naming the parameter on the API


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/v1/services/", "owner"),
        ("/api/v1/services/", "system"),
        ("/api/v1/services/", "tag"),
        ("/api/v1/services/", "q"),
        ("/api/v1/systems/", "owner"),
        ("/api/v1/dependencies/", "source"),
        ("/api/v1/releases/", "service"),
        ("/api/v1/deployments/", "service"),
        ("/api/v1/deployments/", "environment"),
        ("/api/v1/deployments/", "state"),
        ("/api/v1/placements/", "service"),
        ("/api/v1/placements/", "environment"),
        ("/api/v1/decommissions/", "service"),
        ("/api/v1/decommissions/", "state"),
        ("/api/v1/golden-path-updates/", "service"),
        ("/api/v1/runbooks/", "service__slug"),
        ("/api/v1/adrs/", "service__slug"),
        ("/api/v1/memberships/", "team__slug"),
        ("/api/v1/teams/", "parent__slug"),
        ("/api/v1/audit-events/", "actor"),
        ("/api/v1/catalog/export/", "team"),
        ("/api/v1/catalog/export/", "service"),
    ],
)
def test_a_nul_byte_in_a_query_parameter_is_a_400_naming_it(admin_api, path, param) -> None:
    response = admin_api.get(path, {param: NUL})
    assert response.status_code == 400, response.content
    assert param in response.json()


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/catalog/", "owner"),
        ("/catalog/", "system"),
        ("/catalog/", "tag"),
        ("/catalog/", "q"),
        ("/audit/", "actor"),
        ("/audit/", "object_type"),
    ],
)
def test_a_nul_byte_in_a_filter_on_a_page_is_a_form_error(client, world, path, param) -> None:
    client.force_login(world.staff)
    response = client.get(path, {param: NUL})
    assert response.status_code == 200
    contexts = response.context if isinstance(response.context, list) else [response.context]
    values = [value for context in contexts for value in context.flatten().values()]
    filtersets = [value for value in values if isinstance(value, FilterSet)]
    assert filtersets and all(param in filterset.errors for filterset in filtersets)


@pytest.mark.parametrize(("path", "param"), [("/catalog/export.zip", "team"), ("/catalog/export.zip", "service")])
def test_a_nul_byte_in_the_export_download_is_a_404(client, world, path, param) -> None:
    client.force_login(world.staff)
    assert client.get(path, {param: NUL}).status_code == 404


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/teams/", "q"),
        ("/deployments/environments/", "q"),
        ("/deployments/environments/", "owner"),
        ("/deployments/new/payments-api/", "environment"),
        ("/search/", "q"),
        ("/deployments/", "service"),
        ("/deployments/", "environment"),
        ("/deployments/", "state"),
        ("/deployments/", "owner"),
    ],
)
def test_a_nul_byte_in_a_page_parameter_read_by_hand_matches_nothing(client, world, staging, path, param) -> None:
    client.force_login(world.staff)
    response = client.get(path, {param: NUL})
    assert response.status_code == 200
    assert b"Payments API" not in response.content or param in ("environment",)


def _page_paths() -> list[str]:
    """Every page route (not the API, which the schema fuzzer covers, nor the admin), with sample path arguments."""
    import re

    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns, prefix):  # type: ignore[no-untyped-def]
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    samples = {"int": "1", "slug": "payments-api", "uuid": "00000000-0000-0000-0000-000000000000", "str": "x"}
    paths = set()
    for route in walk(get_resolver().url_patterns, "/"):
        if route.startswith(("/admin", "/api", "/accounts/logout")) or "^" in route or "(" in route:
            continue
        paths.add(re.sub(r"<(\w+):\w+>", lambda match: samples.get(match[1], "x"), route))
    return sorted(paths)


def test_no_page_answers_a_nul_byte_in_a_query_parameter_with_a_5xx(client, world, staging) -> None:
    """The parameters the issue named, on every page: a form error, an empty result or a 404, never a 500."""
    client.force_login(world.staff)
    client.raise_request_exception = False
    failures = []
    for path in _page_paths():
        for param in ("service", "environment", "state", "q", "owner", "team"):
            response = client.get(path, {param: NUL})
            if response.status_code >= 500:
                failures.append(f"{path}?{param}= → {response.status_code}")
    assert not failures, failures


def test_query_param_replaces_nul_characters() -> None:
    from django.http import QueryDict

    from portal.filters import query_param

    params = QueryDict("q=a%00b&n=ok")
    assert query_param(params, "q") == "a\ufffdb"
    assert query_param(params, "n") == "ok" and query_param(params, "missing", "x") == "x"


@pytest.mark.parametrize("path", ["/api/v1/audit-events/", "/audit/"])
def test_a_utc_offset_postgresql_does_not_take_is_read_as_the_same_instant(client, world, path) -> None:
    """Python takes offsets up to ±23:59, PostgreSQL up to ±15:59: the filter converts to UTC first."""
    client.force_login(world.staff)
    response = client.get(path, {"since": "1930-11-28T11:16:27-19:05", "until": "2999-01-01T00:00:00+23:00"})
    assert response.status_code == 200


@pytest.mark.parametrize(("path", "status"), [("/api/v1/audit-events/", 400), ("/audit/", 200)])
def test_an_instant_before_the_first_utc_one_is_a_field_error(client, world, path, status) -> None:
    client.force_login(world.staff)
    response = client.get(path, {"since": "0001-01-01T00:00:00+15:00"})
    assert response.status_code == status
    assert "out of range" in response.content.decode()


@pytest.mark.parametrize(("when", "status"), [("0001-01-01T00:00:00+15:00", 400), ("1930-11-28T11:16:27-19:05", 201)])
def test_reported_deploy_times_are_stored_as_utc_or_refused(admin_api, staging, when, status) -> None:
    body = {"service": "payments-api", "environment": "staging", "version": "1.0.0", "commit_sha": "a" * 40}
    response = admin_api.post("/api/v1/deploy-events/", {**body, "status": "succeeded", "started_at": when})
    assert response.status_code == status, response.content
    if status == 400:
        assert "out of range" in response.json()["started_at"][0]


# NUL bytes in slugs of request bodies: a field error


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/services/", {"slug": "x", "name": "X", "owner": NUL}, "owner"),
        ("post", "/api/v1/services/", {"slug": "x", "name": "X", "owner": "payments", "system": NUL}, "system"),
        ("post", "/api/v1/services/payments-api/transfer/", {"new_owner": NUL}, "new_owner"),
        ("post", "/api/v1/systems/", {"slug": "x", "name": "X", "owner": NUL}, "owner"),
        ("post", "/api/v1/dependencies/", {"source": NUL, "target": "payments-api"}, "source"),
        ("post", "/api/v1/teams/", {"slug": "x", "name": "X", "parent": NUL}, "parent"),
        ("post", "/api/v1/memberships/", {"team": NUL, "user": "olivia", "role": "member"}, "team"),
        ("post", "/api/v1/memberships/", {"team": "payments", "user": NUL, "role": "member"}, "user"),
        ("post", "/api/v1/runbooks/", {"service": NUL, "title": "T", "body": ""}, "service"),
        ("post", "/api/v1/adrs/", {"service": NUL, "title": "T", "status": "proposed"}, "service"),
        ("post", "/api/v1/golden-path-updates/", {"service": NUL}, "service"),
        ("post", "/api/v1/scaffold-runs/", {"golden_path": NUL, "owner": "payments", "answers": {}}, "golden_path"),
        ("post", "/api/v1/scaffold-runs/", {"golden_path": "python-worker", "owner": NUL, "answers": {}}, "owner"),
        ("post", "/api/v1/deployments/", {"service": NUL, "environment": "staging", "ref": "main"}, "service"),
        ("post", "/api/v1/decommissions/", {"service": NUL, "reason": "r", "planned_for": "2030-01-01"}, "service"),
        ("patch", "/api/v1/services/payments-api/", {"system": NUL}, "system"),
        ("patch", "/api/v1/teams/payments/", {"parent": NUL}, "parent"),
        # Text fields: DRF's CharField refuses NUL itself (ProhibitNullCharactersValidator, DRF 3.8+).
        ("post", "/api/v1/systems/", {"slug": "x", "name": NUL, "owner": "payments"}, "name"),
        ("post", "/api/v1/runbooks/", {"service": "payments-api", "title": "T", "body": NUL}, "body"),
        (
            "post",
            "/api/v1/deploy-events/",
            {
                "service": "payments-api",
                "environment": "staging",
                "version": NUL,
                "commit_sha": "a" * 40,
                "status": "succeeded",
            },
            "version",
        ),
    ],
)
def test_a_nul_byte_in_a_slug_of_a_body_is_a_field_error(admin_api, staging, method, path, body, field) -> None:
    response = getattr(admin_api, method)(path, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_nul_bytes_in_json_answers_are_a_400(admin_api) -> None:
    body = {"golden_path": "python-worker", "owner": "payments", "answers": {"name": "x", "description": NUL}}
    assert admin_api.post("/api/v1/scaffold-runs/", body, format="json").status_code == 400


def test_a_value_the_database_refuses_is_a_400_not_a_500(admin_api, monkeypatch) -> None:
    """The safety net under the field checks: a DataError (here forced) is the request's fault, answered as such."""
    from django.db import DataError

    from catalog.api import views

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    monkeypatch.setattr(views.services, "system_create", refuse)
    response = admin_api.post("/api/v1/systems/", {"slug": "x", "name": "X", "owner": "payments"}, format="json")
    assert response.status_code == 400 and response.json() == {
        "non_field_errors": ["A value in the request cannot be stored."]
    }


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/services/a%00b/",
        "/api/v1/systems/a%00b/",
        "/api/v1/teams/a%00b/",
        "/api/v1/environments/a%00b/",
        "/api/v1/golden-paths/a%00b/",
    ],
)
def test_a_nul_byte_in_a_path_is_a_404(admin_api, path) -> None:
    assert admin_api.get(path).status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/deployments/0.5/", "/api/v1/runbooks/a%2Fb/", "/api/v1/no-such-thing/"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unrouted_api_path_is_a_json_404(world, path, method) -> None:
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(world.staff)
    response = getattr(api, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json" and response.json() == {"detail": "Not found."}


# Deleting what history protects


def test_deleting_a_service_with_deploy_history_is_a_409_that_says_to_decommission(admin_api, world, staging) -> None:
    _deploy_reported(admin_api)
    response = admin_api.delete("/api/v1/services/payments-api/")
    assert response.status_code == 409, response.content
    assert "decommission" in response.json()["detail"].lower()
    assert admin_api.get("/api/v1/services/payments-api/").status_code == 200
    assert not world.service.__class__.objects.filter(pk=world.service.pk, slug="gone").exists()


def test_a_refused_delete_writes_no_audit_event(admin_api, world, staging) -> None:
    from audit.models import AuditEvent

    _deploy_reported(admin_api)
    admin_api.delete("/api/v1/services/payments-api/")
    assert not AuditEvent.objects.filter(action="service.deleted").exists()


def test_a_page_whose_delete_history_refuses_answers_409_saying_why(world, staging) -> None:
    """No page deletes protected records today; the refusal middleware answers any that comes to, as the API does."""
    from django.db.models import ProtectedError
    from django.test import RequestFactory

    from deployments.models import Release
    from portal.middleware import RefusalMiddleware

    release = Release.objects.create(service=world.service, version="1.0.0", commit_sha="a" * 40)
    request = RequestFactory().get("/catalog/payments-api/")
    response = RefusalMiddleware(lambda request: None).process_exception(  # type: ignore[arg-type, return-value]
        request, ProtectedError("protected", {release})
    )
    assert response is not None and response.status_code == 409
    assert "1 releases refer to it" in response.content.decode()


# What the schema says


@pytest.fixture
def openapi(admin_api) -> dict:  # type: ignore[no-untyped-def]
    response = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    return response.json()


def _property(openapi: dict, component: str, name: str) -> dict:  # type: ignore[type-arg]
    return openapi["components"]["schemas"][component]["properties"][name]


@pytest.mark.parametrize(
    ("component", "name"),
    [
        ("Decommission", "approved_by"),
        ("Decommission", "requested_by"),
        ("Deployment", "previous_version"),
        ("Deployment", "requested_by"),
        ("ScaffoldRun", "service"),
        ("ScaffoldRun", "system"),
        ("Placement", "version"),
        ("GoldenPathUpdate", "merged_by"),
        ("ImportRun", "created_by"),
    ],
)
def test_fields_that_can_be_null_are_nullable_in_the_schema(openapi, component, name) -> None:
    assert _property(openapi, component, name).get("nullable") is True


def test_blank_urls_are_allowed_by_the_schema(openapi) -> None:
    field = _property(openapi, "GoldenPathUpdate", "change_request_url")
    assert "format" not in field
    assert {"type": "string", "maxLength": 0} in field["oneOf"]
    assert {"type": "string", "format": "uri"} in field["oneOf"]


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/api/v1/services/", "get", {"400", "401", "403", "404", "429"}),
        ("/api/v1/services/", "post", {"400", "401", "403", "409", "429"}),
        ("/api/v1/services/{slug}/", "delete", {"401", "403", "404", "409", "429"}),
        ("/api/v1/deployments/", "post", {"400", "409"}),
        ("/api/v1/catalog/export/", "get", {"400", "404"}),
        ("/api/v1/deploy-events/", "post", {"400", "404"}),
    ],
)
def test_error_responses_are_documented(openapi, path, method, codes) -> None:
    documented = set(openapi["paths"][path][method]["responses"])
    assert codes <= documented, documented


def test_error_bodies_are_described(openapi) -> None:
    responses = openapi["paths"]["/api/v1/services/{slug}/"]["delete"]["responses"]
    assert "application/json" in responses["409"]["content"]


def test_is_postgres_fixture_still_available(is_postgres) -> None:
    assert is_postgres == (connection.vendor == "postgresql")


# Open on purpose: the sign-in page, the liveness probe, and /metrics (a token or an allowed network instead); and
# OpenFeature SDKs' evaluations under /ofrep/, which take an SDK key, never a session (tests/flags: 401 without one).
OPEN_PAGES = {"/accounts/login/", "/healthz", "/metrics"}
OPEN_PREFIXES = ("/ofrep/",)


def test_every_page_sends_an_anonymous_visitor_to_sign_in(client, world, staging) -> None:
    """The permission matrix's first row for every page route there is, including the ones added later."""
    client.raise_request_exception = False
    answered = {}
    for path in _page_paths():
        if path in OPEN_PAGES or path.startswith(OPEN_PREFIXES):
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            if not (
                response.status_code in (302, 405)
                and "/accounts/login/" in response.get("Location", "/accounts/login/")
            ):
                answered[f"{method.upper()} {path}"] = response.status_code
    assert not answered, answered
