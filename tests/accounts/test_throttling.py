"""Per-token rate limiting: a fixed one-minute window counted in the cache (Redis in CI, local memory otherwise)."""

import threading
import time
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services, throttling
from accounts.models import ApiToken
from accounts.throttling import WINDOW_SECONDS, ApiTokenRateThrottle

LIMIT = 3
WINDOW_START = 1_800_000_000.0  # a whole number of minutes since the epoch
SERVICES_URL = reverse("api:service-list")


class Clock:
    """Stands in for the `time` module inside accounts.throttling, so that the window cannot roll over mid-test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _empty_cache():  # type: ignore[no-untyped-def]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def limit(settings):  # type: ignore[no-untyped-def]
    settings.API_TOKEN_RATE_LIMIT = LIMIT
    return LIMIT


@pytest.fixture
def clock(monkeypatch) -> Clock:  # type: ignore[no-untyped-def]
    clock = Clock(WINDOW_START + 30)
    monkeypatch.setattr(throttling, "time", clock)
    return clock


def _bearer(user, name: str = "script") -> APIClient:  # type: ignore[no-untyped-def]
    _token, plain = services.token_create(user=user, name=name, lifetime_days=30)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    return api


def _spend(api: APIClient, times: int) -> None:
    for _ in range(times):
        assert api.get(SERVICES_URL).status_code == 200


@pytest.mark.django_db
def test_request_over_the_limit_gets_429_with_retry_after(world, limit, clock):
    api = _bearer(world.owner)
    _spend(api, limit)
    response = api.get(SERVICES_URL)
    assert response.status_code == 429
    assert response["Retry-After"] == "30"  # the clock stands half-way through the minute
    assert api.get(SERVICES_URL).status_code == 429  # and stays refused for the rest of the window


@pytest.mark.django_db
@pytest.mark.parametrize(("offset", "retry_after"), [(0.5, 60), (30.0, 30), (59.0, 1), (59.9, 1)])
def test_retry_after_is_the_rest_of_the_window_in_whole_seconds(world, limit, clock, offset, retry_after):
    clock.now = WINDOW_START + offset
    api = _bearer(world.owner)
    _spend(api, limit)
    response = api.get(SERVICES_URL)
    assert response.status_code == 429
    assert response["Retry-After"] == str(retry_after)


@pytest.mark.django_db
def test_retry_after_on_the_real_clock_is_between_1_and_60_seconds(world, limit):
    if time.time() % WINDOW_SECONDS > WINDOW_SECONDS - 3:  # too close to the next window for four requests
        time.sleep(WINDOW_SECONDS - time.time() % WINDOW_SECONDS + 0.1)
    api = _bearer(world.owner)
    _spend(api, limit)
    response = api.get(SERVICES_URL)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60


@pytest.mark.django_db
def test_the_next_window_starts_a_fresh_budget(world, limit, clock):
    api = _bearer(world.owner)
    _spend(api, limit)
    assert api.get(SERVICES_URL).status_code == 429
    clock.now += WINDOW_SECONDS
    _spend(api, limit)
    assert api.get(SERVICES_URL).status_code == 429


@pytest.mark.django_db
def test_session_requests_are_not_throttled(world, limit, clock):
    session = APIClient()
    session.force_login(world.owner)
    _spend(session, limit * 4)

    api = _bearer(world.owner)  # the same person's token is limited, and exhausting it leaves the session alone
    _spend(api, limit)
    assert api.get(SERVICES_URL).status_code == 429
    _spend(session, 2)


@pytest.mark.django_db
def test_two_tokens_have_independent_budgets(world, limit, clock):
    first, second = _bearer(world.owner, "laptop"), _bearer(world.owner, "ci")
    _spend(first, limit)
    assert first.get(SERVICES_URL).status_code == 429
    _spend(second, limit)
    assert second.get(SERVICES_URL).status_code == 429
    other_user = _bearer(world.outsider)
    _spend(other_user, limit)


@pytest.mark.django_db
def test_refused_requests_do_not_reach_the_view(world, limit, clock):
    api = _bearer(world.owner)
    _spend(api, limit)
    response = api.patch(
        reverse("api:service-detail", args=[world.service.slug]), {"description": "too late"}, format="json"
    )
    assert response.status_code == 429
    world.service.refresh_from_db()
    assert world.service.description == ""


def test_concurrent_requests_never_exceed_the_limit(settings, clock):
    """Many threads (each with its own cache connection) race for the same token's last slots."""
    settings.API_TOKEN_RATE_LIMIT = limit = 25
    threads_count, calls_each = 16, 10
    token = ApiToken(pk=987_654, digest="ab" * 32)  # the throttle needs only the token's identity
    request = SimpleNamespace(auth=token)
    start = threading.Barrier(threads_count)
    allowed: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            throttle = ApiTokenRateThrottle()
            start.wait(timeout=10)
            results = [throttle.allow_request(request, None) for _ in range(calls_each)]
            allowed.extend(results)  # list.extend is atomic under the GIL
        except BaseException as error:  # reported below, in the test's own thread
            errors.append(error)

    workers = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)

    assert not errors
    assert len(allowed) == threads_count * calls_each
    assert allowed.count(True) == limit
    window = int(clock.now // WINDOW_SECONDS)
    assert cache.get(throttling._counter_key(token.digest, window)) == threads_count * calls_each  # none lost


DETAIL_URL = reverse("api:service-detail", kwargs={"slug": "payments-api"})


def _spend_detail(api: APIClient, times: int) -> None:
    """Reads of one service: a view that asks the cache for nothing else (no prefetch), as most of the API."""
    for _ in range(times):
        assert api.get(DETAIL_URL).status_code == 200


def _on_redis() -> bool:
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    return isinstance(caches["default"], RedisCache)


def _redis_count(token: ApiToken, window: int) -> int:
    return int(cache.get(throttling._counter_key(token.digest, window)) or 0)


def _round_trips(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """The number of requests each round trip to Redis counted (its INCRBY), in order."""
    made: list[int] = []
    client_class = type(throttling.script_keys(["x"])[0])
    real = client_class.evalsha

    def counted(self, sha, numkeys, *args):  # type: ignore[no-untyped-def]
        if sha == throttling._TOKEN_SHA:
            made.append(int(args[-1]))
        return real(self, sha, numkeys, *args)

    monkeypatch.setattr(client_class, "evalsha", counted)
    return made


def test_a_busy_token_far_from_its_limit_is_counted_in_the_process_and_the_count_reaches_redis(
    world, settings, clock, monkeypatch
):  # type: ignore[no-untyped-def]
    settings.API_TOKEN_RATE_LIMIT = 10_000
    api = _bearer(world.owner)
    token = ApiToken.objects.get(user=world.owner)
    window = int(clock.now // WINDOW_SECONDS)
    made = _round_trips(monkeypatch) if _on_redis() else []
    _spend_detail(api, 20)
    if not _on_redis():  # local memory: every request counted in the cache, nothing held
        assert int(cache.get(throttling._counter_key(token.digest, window))) == 20
        return
    # The first request finds no cached token (the database answers and caches it), the second brings it back: from
    # then on the process answers and counts on its own, for a second at most.
    assert made == [1, 1] and _redis_count(token, window) == 2
    settings.API_TOKEN_HOLD_SECONDS = 0  # the hold is over: the next request takes the 18 counted meanwhile along
    _spend_detail(api, 1)
    assert made[-1] == 19 and _redis_count(token, window) == 21


def test_near_its_limit_every_request_is_counted_in_redis_and_the_limit_holds_exactly(
    world, settings, clock, monkeypatch
):  # type: ignore[no-untyped-def]
    settings.API_TOKEN_RATE_LIMIT = 40  # a process counts on its own at most a 32nd of what is left: 1 at first
    api = _bearer(world.owner)
    _spend_detail(api, 40)
    assert api.get(DETAIL_URL).status_code == 429
    token = ApiToken.objects.get(user=world.owner)
    assert int(cache.get(throttling._counter_key(token.digest, int(clock.now // WINDOW_SECONDS)))) == 41


def test_a_token_revoked_here_is_refused_at_once_and_one_revoked_elsewhere_within_the_hold(world, settings, clock):  # type: ignore[no-untyped-def]
    settings.API_TOKEN_RATE_LIMIT = 10_000
    api = _bearer(world.owner)
    _spend_detail(api, 3)
    token = ApiToken.objects.get(user=world.owner)
    services.token_revoke(token=token, revoked_by=world.owner)
    assert api.get(DETAIL_URL).status_code == 401  # this process let go of it with the revocation

    other = _bearer(world.owner, name="other")
    _spend_detail(api := other, 3)
    revoked = ApiToken.objects.get(user=world.owner, name="other")
    if settings.API_TOKEN_CACHE:
        cache.set(f"apitoken:{revoked.prefix}", "revoked", 300)  # the tombstone another process's revocation writes
    else:  # no shared cache (the embedded defaults): every request asks the database
        ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    settings.API_TOKEN_HOLD_SECONDS = 0.2
    time.sleep(0.25)
    assert api.get(DETAIL_URL).status_code == 401
