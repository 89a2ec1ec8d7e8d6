"""Personal API tokens, end to end: created and revoked on the tokens page, presented as `Authorization: Bearer`."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

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
    api = _bearer(plain)
    assert api.get(SERVICES_URL).status_code == 200
    ApiToken.objects.filter(user=world.owner).update(expires_at=timezone.now() - timedelta(seconds=1))
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


def test_last_used_at_is_set_on_use_and_written_at_most_once_a_minute(client, world):
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

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    assert api.get(SERVICES_URL).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at >= before
    assert token.last_used_at > timezone.now() - timedelta(minutes=1)


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
