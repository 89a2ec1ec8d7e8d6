"""Personal API tokens, end to end: created and revoked on the tokens page, presented as `Authorization: Bearer`."""

import re
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiToken
from accounts.services import token_digest
from audit.models import AuditEvent
from catalog.models import Service

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"rwy_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
TOKENS_URL = reverse("accounts:token-list")
SERVICES_URL = reverse("api:service-list")


@pytest.fixture(autouse=True)
def _empty_cache():  # type: ignore[no-untyped-def]
    """Token requests are counted in the cache (Redis in CI); no test inherits another's counters."""
    cache.clear()
    yield
    cache.clear()


def _token_create(client, user, *, name="deploy script", days=30) -> str:  # type: ignore[no-untyped-def]
    """Create a token on the tokens page, as a person would, and read the secret off the page."""
    client.force_login(user)
    response = client.post(TOKENS_URL, {"name": name, "lifetime_days": days})
    assert response.status_code == 200
    found = TOKEN_RE.findall(response.content.decode())
    assert len(found) == 1, "the new token is shown exactly once on the page"
    prefix, secret = found[0]
    return f"rwy_{prefix}_{secret}"


def _secret(plain: str) -> str:
    match = TOKEN_RE.fullmatch(plain)
    assert match is not None
    return match.group(2)


def _bearer(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def test_secret_is_shown_once_and_never_again(client, world):
    plain = _token_create(client, world.owner)
    token = ApiToken.objects.get(user=world.owner)
    assert token.name == "deploy script"
    assert plain.startswith(f"rwy_{token.prefix}_")
    secret = _secret(plain)

    page = client.get(TOKENS_URL).content.decode()
    assert secret not in page
    assert not TOKEN_RE.search(page)
    assert f"rwy_{token.prefix}_…" in page  # the list still identifies the token by its public prefix


def test_the_page_showing_a_new_secret_is_never_stored_by_a_browser_or_proxy(client, world):
    client.force_login(world.owner)
    shown = client.post(TOKENS_URL, {"name": "deploy script", "lifetime_days": 30})
    assert TOKEN_RE.search(shown.content.decode())
    for response in (shown, client.get(TOKENS_URL)):
        directives = {part.strip() for part in response.headers["Cache-Control"].split(",")}
        assert {"no-store", "private"} <= directives


def test_only_the_sha256_digest_is_stored(client, world):
    plain = _token_create(client, world.owner)
    token = ApiToken.objects.get(user=world.owner)
    secret = _secret(plain)
    assert token.digest == token_digest(secret)
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    for column, value in stored.items():
        assert secret not in str(value), column
        assert plain not in str(value), column
    events = AuditEvent.objects.filter(action="api_token.created", object_id=str(token.pk))
    assert events.count() == 1
    assert secret not in str(events.values().get())


def test_expiry_follows_the_chosen_lifetime(client, world):
    before = timezone.now()
    _token_create(client, world.owner, days=7)
    token = ApiToken.objects.get(user=world.owner)
    assert before + timedelta(days=7) <= token.expires_at <= timezone.now() + timedelta(days=7)


def test_a_lifetime_off_the_menu_creates_nothing(client, world):
    client.force_login(world.owner)
    response = client.post(TOKENS_URL, {"name": "forever", "lifetime_days": 5000})
    assert response.status_code == 200
    assert not TOKEN_RE.search(response.content.decode())
    assert not ApiToken.objects.exists()


def test_bearer_token_authenticates_as_its_owner(client, world):
    plain = _token_create(client, world.owner)
    api = _bearer(plain)
    assert api.get(SERVICES_URL).status_code == 200

    detail = reverse("api:service-detail", args=[world.service.slug])
    response = api.patch(detail, {"description": "set by a script"}, format="json")
    assert response.status_code == 200
    assert Service.objects.get(pk=world.service.pk).description == "set by a script"
    assert AuditEvent.objects.get(action="service.updated").actor_id == world.owner.pk


def test_bearer_token_carries_its_owners_permissions_only(client, world):
    plain = _token_create(client, world.outsider)
    detail = reverse("api:service-detail", args=[world.service.slug])
    response = _bearer(plain).patch(detail, {"description": "not mine"}, format="json")
    assert response.status_code == 403
    assert Service.objects.get(pk=world.service.pk).description == ""


@pytest.mark.parametrize(
    "header",
    [
        "Bearer rwy_000000000000_" + "x" * 43,  # unknown prefix
        "Bearer rwy_{prefix}_" + "y" * 43,  # a real prefix with the wrong secret
        "Bearer {plain}x",  # the real token, one character too long
        "Bearer not-a-token",
        "Bearer rwy_",
        "Bearer rwy_{prefix}_",
        "Bearer",
        "Bearer {plain} extra",
        "Token garbage",
    ],
)
def test_unknown_or_garbled_token_is_refused(client, world, header):
    plain = _token_create(client, world.owner)
    prefix = ApiToken.objects.get(user=world.owner).prefix
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=header.format(prefix=prefix, plain=plain))
    response = api.get(SERVICES_URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_expired_token_is_refused(client, world):
    plain = _token_create(client, world.owner)
    ApiToken.objects.filter(user=world.owner).update(expires_at=timezone.now() + timedelta(seconds=1))
    api = _bearer(plain)
    assert api.get(SERVICES_URL).status_code == 200  # with Redis, the token is now cached for a minute
    time.sleep(1.1)
    response = api.get(SERVICES_URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_token_of_a_deactivated_user_is_refused(client, world):
    plain = _token_create(client, world.owner)
    get_user_model().objects.filter(pk=world.owner.pk).update(is_active=False)
    assert _bearer(plain).get(SERVICES_URL).status_code == 401


def test_revoked_token_fails_on_the_very_next_request(client, world):
    plain = _token_create(client, world.owner)
    token = ApiToken.objects.get(user=world.owner)
    api = _bearer(plain)
    assert api.get(SERVICES_URL).status_code == 200

    response = client.post(reverse("accounts:token-revoke", args=[token.pk]))
    assert response.status_code == 302
    assert response["Location"] == TOKENS_URL

    refused = api.get(SERVICES_URL)
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="api"'
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_token.revoked", object_id=str(token.pk)).count() == 1


def test_revoking_needs_a_post(client, world):
    _token_create(client, world.owner)
    token = ApiToken.objects.get(user=world.owner)
    assert client.get(reverse("accounts:token-revoke", args=[token.pk])).status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


def test_nobody_can_revoke_someone_elses_token(client, world):
    plain = _token_create(client, world.owner)
    token = ApiToken.objects.get(user=world.owner)
    client.force_login(world.outsider)
    assert client.post(reverse("accounts:token-revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert _bearer(plain).get(SERVICES_URL).status_code == 200


def test_the_tokens_page_lists_only_your_own_tokens(client, world):
    _token_create(client, world.owner, name="olivias laptop")
    _token_create(client, world.outsider, name="oscars build")
    page = client.get(TOKENS_URL).content.decode()  # signed in as the outsider now
    assert "oscars build" in page
    assert "olivias laptop" not in page


def test_last_used_at_is_set_on_use_and_written_at_most_once_a_minute(client, world, monkeypatch):
    plain = _token_create(client, world.owner)
    token = ApiToken.objects.get(user=world.owner)
    assert token.last_used_at is None

    before = timezone.now()
    api = _bearer(plain)
    assert api.get(SERVICES_URL).status_code == 200
    token.refresh_from_db()
    first_use = token.last_used_at
    assert first_use is not None
    assert before <= first_use <= timezone.now()

    assert api.get(SERVICES_URL).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at == first_use

    later = timezone.now() + timedelta(minutes=2)  # two minutes on, as the token service sees the clock
    monkeypatch.setattr(services, "timezone", SimpleNamespace(now=lambda: later))
    assert api.get(SERVICES_URL).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at == later
    assert api.get(SERVICES_URL).status_code == 200  # read again after the write, cached again: still one a minute
    token.refresh_from_db()
    assert token.last_used_at == later


def test_token_lookup_reads_what_the_orm_reads(world):
    from accounts import selectors, services

    token, _secret = services.token_create(user=world.staff, name="ci", lifetime_days=7)
    expected = ApiToken.objects.select_related("user").get(pk=token.pk)
    found = selectors.token_with_user(prefix=token.prefix)
    assert found is not None and selectors.token_with_user(prefix="0" * 12) is None
    for obj, other in ((found, expected), (found.user, expected.user)):
        for field in type(obj)._meta.concrete_fields:
            mine, theirs = getattr(obj, field.attname), getattr(other, field.attname)
            assert (mine, type(mine)) == (theirs, type(theirs)), field.name
        assert obj._state.db == other._state.db and not obj._state.adding
    assert found.user.is_staff is True and found.expires_at.tzinfo is not None


# --- The token cache (on by default with Redis; forced on here so that the embedded-default run checks it too) ------


@pytest.fixture
def token_cache(settings):  # type: ignore[no-untyped-def]
    settings.API_TOKEN_CACHE = True


def _token_queries(queries) -> list[str]:  # type: ignore[no-untyped-def]
    return [q["sql"] for q in queries.captured_queries if ApiToken._meta.db_table in q["sql"]]


def test_a_token_in_use_is_read_from_the_cache_not_the_database(client, world, token_cache):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api = _bearer(_token_create(client, world.owner))
    with CaptureQueriesContext(connection) as first:
        assert api.get(SERVICES_URL).status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert api.get(SERVICES_URL).status_code == 200
    assert len(_token_queries(first)) >= 1  # read (and its last use written) once
    assert _token_queries(second) == []


def test_a_cached_token_is_refused_at_once_when_revoked_or_its_user_deactivated(client, world, token_cache):
    api = _bearer(_token_create(client, world.owner))
    assert api.get(SERVICES_URL).status_code == 200
    owner = get_user_model().objects.get(pk=world.owner.pk)
    owner.is_active = False
    owner.save()
    assert api.get(SERVICES_URL).status_code == 401

    owner.is_active = True
    owner.save()
    assert api.get(SERVICES_URL).status_code == 200  # back, because the user is
    services.token_revoke(token=ApiToken.objects.get(user=owner), revoked_by=owner)
    assert api.get(SERVICES_URL).status_code == 401


def test_a_wrong_secret_is_refused_even_with_the_token_cached_and_spends_none_of_its_quota(
    client, world, token_cache, settings
):
    plain = _token_create(client, world.owner)
    settings.API_TOKEN_RATE_LIMIT = 2
    api = _bearer(plain)
    assert api.get(SERVICES_URL).status_code == 200  # cached now
    forged = _bearer(plain[:-4] + ("AAAA" if not plain.endswith("AAAA") else "BBBB"))
    for _ in range(3):
        assert forged.get(SERVICES_URL).status_code == 401
    assert api.get(SERVICES_URL).status_code == 200  # the second of its two
    assert api.get(SERVICES_URL).status_code == 429


def test_a_cached_entry_of_another_shape_is_read_afresh_from_the_database(client, world, token_cache, settings):
    """An entry cached before a release that changed the token's or the user's fields is not loaded into the wrong
    fields: the token is read from the database and the request answered as usual."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts import tokens

    settings.API_TOKEN_HOLD_SECONDS = 0  # every request reads the cache
    plain = _token_create(client, world.owner)
    api = _bearer(plain)
    assert api.get(SERVICES_URL).status_code == 200
    key = tokens.entry_key(ApiToken.objects.get(user=world.owner).prefix)
    entry = cache.get(key)
    assert isinstance(entry, dict)
    loaded = tokens.entry_load(entry)
    assert loaded is not None and loaded.user.pk == world.owner.pk and loaded.user.username == world.owner.username
    assert "password" in loaded.user.get_deferred_fields()
    for changed in ({**entry, "user": [*entry["user"], "a field of a later release"]}, {**entry, "token": None}):
        cache.set(key, changed, 60)
        with CaptureQueriesContext(connection) as queries:
            response = api.get(SERVICES_URL)
        assert response.status_code == 200
        assert len(_token_queries(queries)) >= 1  # read from the database, not from the odd entry
