"""A service's refusal that a view did not catch is a message or a 4xx page, never a 500 (portal.middleware)."""

import json

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.cache import SessionStore
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from portal.errors import Conflict
from portal.middleware import RefusalMiddleware

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def _request(method: str, path: str = "/catalog/", **headers: str):  # type: ignore[no-untyped-def]
    request = getattr(RequestFactory(), method)(path, headers=headers)
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    request.htmx = HtmxDetails(request)
    request.user = AnonymousUser()
    return request


def _answer(request, error):  # type: ignore[no-untyped-def]
    return RefusalMiddleware(lambda r: None).process_exception(request, error)  # type: ignore[arg-type,return-value]


def test_a_post_from_our_page_goes_back_to_it_with_the_message():
    request = _request("post", Referer="http://testserver/catalog/services/a/")
    response = _answer(request, ValidationError({"target": "Change it in the catalog source."}))
    assert response.status_code == 303 and response["Location"] == "http://testserver/catalog/services/a/"
    assert [str(m) for m in get_messages(request)] == ["Change it in the catalog source."]


def test_a_conflict_without_a_page_to_return_to_is_a_409_page():
    response = _answer(_request("post"), Conflict("Deployment #4 is in the way."))
    assert response.status_code == 409 and "Deployment #4 is in the way." in response.content.decode()


def test_a_get_is_never_sent_back_to_its_referer():
    """A page that refers to itself would redirect for ever."""
    response = _answer(_request("get", Referer="http://testserver/catalog/"), ValidationError("No."))
    assert response.status_code == 400 and "No." in response.content.decode()


def test_another_sites_referer_is_not_followed():
    response = _answer(_request("post", Referer="https://evil.example.com/"), ValidationError("No."))
    assert response.status_code == 400


def test_htmx_gets_the_message_in_the_message_region():
    response = _answer(_request("post", HX_Request="true"), ValidationError("Refused <b>politely</b>."))
    assert response["HX-Retarget"] == "#messages" and response["HX-Reswap"] == "innerHTML"
    assert "Refused &lt;b&gt;politely&lt;/b&gt;." in response.content.decode()


def test_other_exceptions_are_left_alone():
    assert _answer(_request("post"), RuntimeError("boom")) is None


def test_under_the_api_the_answer_is_json():
    response = _answer(_request("post", "/api/v1/things/"), ValidationError("Bad slug."))
    assert response.status_code == 400 and json.loads(response.content) == {"detail": "Bad slug."}
