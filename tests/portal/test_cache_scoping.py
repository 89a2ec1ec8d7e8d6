"""Two installations on one Redis database never see each other's cache entries.

Installation A is this test process on its test database; installation B is a second PostgreSQL database, migrated
afresh, driven by `manage.py`-style subprocesses with their own DATABASE_URL and the same REDIS_URL. What A caches
(catalog pages and counts, API tokens, rate-limit and sign-in counts, sessions) must not be what B serves.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts import throttling
from portal import cache as portal_cache
from portal.models import Installation
from techdocs.selectors import markdown_render
from tests.processes import database_url

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db]

SERVICES_URL = reverse("api:service-list")
CATALOG_URL = reverse("catalog:service-list")

# Run by installation B: `setup` makes its one user and one service; `probe` asks B's web stack what A has cached.
_B_SCRIPT = r"""
import json, sys
import django
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from portal.cache import installation_id

args = json.loads(sys.argv[1])
out = {"identity": installation_id()}
if args.get("setup"):
    from tests.factories import TeamFactory, service_make
    user = get_user_model().objects.create_user("bella", password="x", is_staff=True)
    service_make(owner=TeamFactory(name="B team", slug="b-team"), slug="b-only", name="B only")
bella = get_user_model().objects.get(username="bella")
if args.get("urls"):
    client = Client()
    client.force_login(bella)
    out["pages"] = {url: client.get(url).content.decode() for url in args["urls"]}
if args.get("token"):
    out["token_status"] = Client().get(args["api"], headers={"Authorization": f"Bearer {args['token']}"}).status_code
if args.get("session"):
    from django.contrib.sessions.backends.cached_db import SessionStore
    out["session_user"] = SessionStore(session_key=args["session"]).get("_auth_user_id")
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = args["session"]
    out["session_status"] = client.get(args["api"]).status_code
if args.get("counter"):
    from accounts import throttling
    out["count"] = throttling.window_count(args["counter"], [])[0]
if args.get("signin"):
    from accounts import throttling
    out["signin_wait"] = throttling.signin_wait(**args["signin"])
print("RESULT" + json.dumps(out))
"""


def _env(database: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "RUNWAY_INSTALLATION_ID"}
    return env | {
        "DATABASE_URL": database_url(database),
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "PYTHONPATH": f"{Path(settings.BASE_DIR) / 'platform'}{os.pathsep}{settings.BASE_DIR}",
        "CONN_MAX_AGE": "0",
    }


def _run(database: str, **args: object) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, "-c", _B_SCRIPT, json.dumps(args)],
        cwd=settings.BASE_DIR,
        env=_env(database),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def other(django_db_setup, django_db_blocker) -> str:  # type: ignore[no-untyped-def]
    """Installation B: a second database on the same server, migrated afresh (with Redis on), with one user and one
    service of its own."""
    with django_db_blocker.unblock():
        name = f"{connection.settings_dict['NAME']}_other"
        admin = database_url("postgres").replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg.execute(f'CREATE DATABASE "{name}"')
    try:
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input"],
            cwd=settings.BASE_DIR,
            env=_env(name),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        _run(name, setup=True)
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as pg:
            pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _on_redis() -> None:
    assert isinstance(caches["default"], RedisCache), "these tests are about a shared Redis: set REDIS_URL"


def test_each_installation_has_its_own_lasting_identity(other):
    mine = portal_cache.installation_id()
    assert mine == f"{connection.settings_dict['NAME']}:{Installation.objects.get().secret}"
    theirs = _run(other)["identity"]
    assert theirs.startswith(f"{other}:") and theirs != mine
    assert _run(other)["identity"] == theirs, "every process of one installation reads the same identity"
    # flush (and the test runner's flush between transactional tests) empties managed tables only: the identity stays.
    assert Installation._meta.db_table not in connection.introspection.django_table_names()


def test_catalog_pages_and_counts_cached_by_one_are_not_served_to_the_other(other, world, client, settings):
    settings.CATALOG_API_CACHE = settings.CATALOG_PAGE_CACHE = True
    api = APIClient()
    api.force_authenticate(world.owner)
    assert [row["slug"] for row in api.get(SERVICES_URL).json()["results"]] == ["payments-api"]
    client.force_login(world.owner)
    assert "payments-api" in client.get(CATALOG_URL).content.decode()

    pages = _run(other, urls=[SERVICES_URL, CATALOG_URL])["pages"]
    listed = json.loads(pages[SERVICES_URL])
    assert listed["count"] == 1 and [row["slug"] for row in listed["results"]] == ["b-only"]
    assert "b-only" in pages[CATALOG_URL] and "payments-api" not in pages[CATALOG_URL]


def test_an_api_token_cached_by_one_does_not_open_the_other(other, world, settings):
    settings.API_TOKEN_CACHE = True
    _token, plain = account_services.token_create(user=world.owner, name="ci", lifetime_days=30)
    mine = APIClient()
    mine.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert mine.get(SERVICES_URL).status_code == 200  # now cached, with its user, in Redis
    assert _run(other, token=plain, api=SERVICES_URL)["token_status"] == 401


def test_rate_limits_and_sign_in_locks_do_not_cross(other, settings):
    settings.SIGNIN_FAILURES_PER_ACCOUNT = 3
    for expected in (1, 2, 3):
        assert throttling.window_count("ratelimit:token:shared:1", [])[0] == expected
    person = {"username": "alice", "address": "203.0.113.9"}
    for _ in range(3):
        throttling.signin_failure_count(**person)
    assert throttling.signin_wait(**person) > 0
    seen = _run(other, counter="ratelimit:token:shared:1", signin=person)
    assert seen["count"] == 1 and seen["signin_wait"] == 0
    assert throttling.window_count("ratelimit:token:shared:1", [])[0] == 4, "B's count did not touch A's"


def test_a_session_of_one_is_not_a_session_of_the_other(other, world, client, settings):
    client.force_login(world.owner)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    seen = _run(other, session=key, api=SERVICES_URL)
    assert seen["session_user"] is None
    assert seen["session_status"] in {401, 403}


def test_every_key_in_redis_carries_the_installation_prefix(world, client, settings):
    """Whatever the code paths (Django's cache calls, the Lua scripts' raw keys, sessions), nothing lands in Redis
    outside this installation's namespace."""
    settings.CATALOG_API_CACHE = settings.CATALOG_PAGE_CACHE = settings.API_TOKEN_CACHE = True
    _token, plain = account_services.token_create(user=world.owner, name="ci", lifetime_days=30)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert api.get(SERVICES_URL).status_code == 200
    assert api.get(SERVICES_URL).status_code == 200  # the cached path: the token script with its prefetch
    client.force_login(world.owner)
    assert client.get(CATALOG_URL).status_code == 200
    client.logout()
    client.post(reverse("accounts:login"), {"username": world.owner.username, "password": "wrong"})
    throttling.signin_failure_count(username="x", address="198.51.100.1")
    markdown_render(text="# Hello")

    prefix = portal_cache.installation_id().encode() + b":"
    keys = list(redis.Redis.from_url(settings.REDIS_URL).scan_iter(count=1000))
    assert len(keys) >= 8
    assert [key for key in keys if not key.startswith(prefix)] == []


def test_the_raw_key_helper_scopes_every_key():
    _client, keys = portal_cache.script_keys(["apitoken:abc", "ratelimit:token:d:1", "catalog:version"])
    assert all(key.startswith(f"{portal_cache.installation_id()}:") for key in keys)
    assert keys == [cache.make_key(name) for name in ("apitoken:abc", "ratelimit:token:d:1", "catalog:version")]


def test_the_setting_names_the_installation_when_given(settings):
    settings.RUNWAY_INSTALLATION_ID = "staging eu"
    assert cache.make_key("catalog:version").startswith("staging_eu:")
    settings.RUNWAY_INSTALLATION_ID = ""
    assert cache.make_key("catalog:version").startswith(f"{connection.settings_dict['NAME']}:")


def test_a_cached_api_page_still_costs_one_redis_round_trip(world, settings, monkeypatch):
    settings.CATALOG_API_CACHE = settings.API_TOKEN_CACHE = True
    _token, plain = account_services.token_create(user=world.owner, name="ci", lifetime_days=30)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    first = api.get(SERVICES_URL)
    sent: list[object] = []
    real = redis.Redis.execute_command

    def counted(self, *args, **options):  # type: ignore[no-untyped-def]
        sent.append(args[0])
        return real(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    again = api.get(SERVICES_URL)
    assert again.content == first.content
    assert sent == ["EVALSHA"]


_SEND_SCRIPT = r"""
import django
django.setup()
from portal.tasks import health_check
health_check.delay()
"""


def test_with_the_setting_celery_queues_are_scoped_too(settings):
    """A worker of one installation must not take another's tasks; with RUNWAY_INSTALLATION_ID the queue's keys are
    the installation's own."""
    env = _env(connection.settings_dict["NAME"]) | {"RUNWAY_INSTALLATION_ID": "staging-eu"}
    done = subprocess.run([sys.executable, "-c", _SEND_SCRIPT], cwd=settings.BASE_DIR, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr[-3000:]
    keys = set(redis.Redis.from_url(settings.REDIS_URL).scan_iter(count=1000))
    assert b"staging-eu:celery" in keys
    assert [key for key in keys if not key.startswith(b"staging-eu:")] == []
