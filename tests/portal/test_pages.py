"""Portal-wide pages: health, sign-in with CSRF enforced, the placeholder sections, the API schema and its docs,
and the CSRF token that htmx requests carry (base.html's hx-headers)."""

import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from catalog.models import Service
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

LOGIN = "/accounts/login/"
PASSWORD = "correct horse battery"  # tests.factories.UserFactory's password


def _form_csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "the page has no CSRF form field"
    return match.group(1)


def _htmx_csrf_token(html: str) -> str:
    """The token base.html puts in hx-headers, which htmx sends as X-CSRFToken on every request."""
    match = re.search(r"<body hx-headers='([^']+)'", html)
    assert match, "the body carries no hx-headers"
    return json.loads(match.group(1))["X-CSRFToken"]


def test_healthz_answers_json(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_anonymous_catalog_redirects_to_sign_in(client: Client) -> None:
    response = client.get("/catalog/")
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next=/catalog/"


def test_sign_in_through_the_form_with_csrf_enforced() -> None:
    UserFactory(username="nora")
    client = Client(enforce_csrf_checks=True)
    page = client.get(f"{LOGIN}?next=/catalog/")
    assert page.status_code == 200
    assert "csrftoken" in client.cookies
    credentials = {"username": "nora", "password": PASSWORD, "next": "/catalog/"}

    refused = client.post(LOGIN, credentials)
    assert refused.status_code == 403
    assert "_auth_user_id" not in client.session

    response = client.post(LOGIN, {**credentials, "csrfmiddlewaretoken": _form_csrf_token(page.content.decode())})
    assert response.status_code == 302
    assert response["Location"] == "/catalog/"
    catalog = client.get("/catalog/")
    assert catalog.status_code == 200
    assert catalog.context["user"].username == "nora"


def test_sign_in_with_a_wrong_password_stays_on_the_form() -> None:
    UserFactory(username="nora")
    client = Client(enforce_csrf_checks=True)
    token = _form_csrf_token(client.get(LOGIN).content.decode())
    response = client.post(LOGIN, {"username": "nora", "password": "not it", "csrfmiddlewaretoken": token})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    ("path", "title"),
    [("/create/", "Create a service"), ("/deployments/", "Deployments"), ("/insights/", "Insights")],
)
def test_placeholder_sections_answer_for_a_signed_in_user(client: Client, path: str, title: str) -> None:
    assert client.get(path).status_code == 302  # anonymous: sent to sign in
    client.force_login(UserFactory())
    response = client.get(path)
    assert response.status_code == 200
    assert f"<h1>{title}</h1>".encode() in response.content
    assert b'aria-current="page"' in response.content


def test_api_schema_is_an_openapi_3_document(client: Client) -> None:
    client.force_login(UserFactory())
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3")
    assert schema["info"]["title"] == "Runway API"
    assert "/api/v1/services/" in schema["paths"]


def test_api_docs_are_served_without_any_cdn(client: Client) -> None:
    client.force_login(UserFactory())
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    for cdn in ("cdn.", "unpkg", "jsdelivr", "cdnjs"):
        assert cdn not in html, f"the API docs load something from {cdn}"
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets, "the docs page references no script or stylesheet"
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a static file of the project"


def test_htmx_post_needs_the_csrf_header_that_base_html_sends(world) -> None:  # type: ignore[no-untyped-def]
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    url = reverse("catalog:service-edit", args=[world.service.slug])
    page = client.get(url)
    assert page.status_code == 200
    token = _htmx_csrf_token(page.content.decode())
    validation = {"_validate": "name", "name": "", "description": "", "lifecycle": "production", "tier": "1"}

    refused = client.post(url, validation, HTTP_HX_REQUEST="true")
    assert refused.status_code == 403

    response = client.post(url, validation, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    html = response.content.decode()
    # Only the edited field's errors come back, as a fragment for hx-target="#errors-name".
    assert html.startswith('<div class="field-errors" id="errors-name"')
    assert "This field is required." in html
    assert "<html" not in html
    # Validation writes nothing.
    assert Service.objects.get(pk=world.service.pk).name == "Payments API"
