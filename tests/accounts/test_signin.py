"""Failed sign-ins are throttled per account and client address, and per client address; lockouts expire."""

import time

import pytest
from django.core.cache import cache
from django.urls import reverse

from audit.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]  # the embedded defaults (SQLite, local memory cache) too

LOGIN_URL = reverse("accounts:login")
ADMIN_LOGIN_URL = reverse("admin:login")
PASSWORD = "correct horse battery"  # tests/factories.py
ATTACKER, OFFICE = "203.0.113.66", "198.51.100.7"
REFUSED = "Too many failed sign-ins"


@pytest.fixture(autouse=True)
def _empty_cache():  # type: ignore[no-untyped-def]
    cache.clear()  # the counters live in the cache (Redis in CI)
    yield
    cache.clear()


def _sign_in(client, username: str, password: str, address: str, url: str = LOGIN_URL):  # type: ignore[no-untyped-def]
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def _signed_in(client) -> bool:  # type: ignore[no-untyped-def]
    return "_auth_user_id" in client.session


def test_a_hundred_wrong_passwords_lock_that_address_out_of_the_account(client, world) -> None:
    for attempt in range(100):
        response = _sign_in(client, "olivia", f"guess-{attempt}", ATTACKER)
        assert response.status_code == 200 and not _signed_in(client)

    right = _sign_in(client, "olivia", PASSWORD, ATTACKER)

    assert right.status_code == 200 and not _signed_in(client)
    assert REFUSED in right.content.decode()
    assert "try again in 15 minutes" in right.content.decode()


def test_the_real_user_can_still_sign_in_from_another_address(client, world) -> None:
    for attempt in range(100):
        _sign_in(client, "olivia", f"guess-{attempt}", ATTACKER)

    response = _sign_in(client, "olivia", PASSWORD, OFFICE)

    assert response.status_code == 302 and _signed_in(client)


def test_an_address_that_tries_many_accounts_is_locked_out_of_all_of_them(client, world, settings) -> None:
    for attempt in range(settings.SIGNIN_FAILURES_PER_ADDRESS):
        _sign_in(client, f"someone-{attempt}", "guess", ATTACKER)  # one try each: no account's own limit is reached

    assert REFUSED in _sign_in(client, "olivia", PASSWORD, ATTACKER).content.decode()
    assert not _signed_in(client)
    assert _sign_in(client, "olivia", PASSWORD, OFFICE).status_code == 302


def test_a_lockout_expires(client, world, settings) -> None:
    settings.SIGNIN_LOCKOUT_SECONDS = 1
    for attempt in range(settings.SIGNIN_FAILURES_PER_ACCOUNT):
        _sign_in(client, "olivia", f"guess-{attempt}", ATTACKER)
    assert REFUSED in _sign_in(client, "olivia", PASSWORD, ATTACKER).content.decode()

    time.sleep(1.5)

    assert _sign_in(client, "olivia", PASSWORD, ATTACKER).status_code == 302 and _signed_in(client)


def test_signing_in_clears_the_accounts_count_from_that_address(client, world, settings) -> None:
    for _round in range(2):
        for attempt in range(settings.SIGNIN_FAILURES_PER_ACCOUNT - 1):
            _sign_in(client, "olivia", f"guess-{attempt}", OFFICE)
        assert _sign_in(client, "olivia", PASSWORD, OFFICE).status_code == 302
        client.logout()


def test_a_forwarded_for_header_does_not_let_an_attacker_change_address(client, world, settings) -> None:
    for attempt in range(settings.SIGNIN_FAILURES_PER_ACCOUNT):
        client.post(
            LOGIN_URL,
            {"username": "olivia", "password": f"guess-{attempt}"},
            REMOTE_ADDR=ATTACKER,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}",
        )
    assert REFUSED in _sign_in(client, "olivia", PASSWORD, ATTACKER).content.decode()


def test_behind_a_trusted_proxy_the_forwarded_address_counts(client, world, settings) -> None:
    settings.SIGNIN_TRUSTED_PROXIES = 1
    proxy = "10.0.0.2"
    for attempt in range(settings.SIGNIN_FAILURES_PER_ACCOUNT):
        client.post(
            LOGIN_URL,
            {"username": "olivia", "password": f"guess-{attempt}"},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=f"192.0.2.1, {ATTACKER}",  # what the client sent, then what the proxy saw
        )
    refused = client.post(
        LOGIN_URL, {"username": "olivia", "password": PASSWORD}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=ATTACKER
    )
    assert REFUSED in refused.content.decode()
    other = client.post(
        LOGIN_URL, {"username": "olivia", "password": PASSWORD}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=OFFICE
    )
    assert other.status_code == 302


def test_failures_and_lockouts_are_audited(client, world, settings) -> None:
    for attempt in range(settings.SIGNIN_FAILURES_PER_ACCOUNT):
        _sign_in(client, "olivia", f"guess-{attempt}", ATTACKER)
    _sign_in(client, "olivia", PASSWORD, ATTACKER)  # refused while locked: no password was checked

    events = AuditEvent.objects.filter(object_type="auth.user", object_id=str(world.owner.pk))
    failed = events.filter(action="account.signin_failed")
    assert failed.count() == settings.SIGNIN_FAILURES_PER_ACCOUNT
    assert {event.after["address"] for event in failed} == {ATTACKER}
    locked = events.get(action="account.signin_locked")
    assert locked.after == {"address": ATTACKER, "seconds": settings.SIGNIN_LOCKOUT_SECONDS}
    assert locked.actor is None and locked.actor_repr == "anonymous"
    assert all(PASSWORD not in str(event.after) and "guess" not in str(event.after) for event in events)


def test_the_admin_sign_in_is_throttled_too(client, world, settings) -> None:
    for attempt in range(settings.SIGNIN_FAILURES_PER_ACCOUNT):
        _sign_in(client, "stella", f"guess-{attempt}", ATTACKER, url=ADMIN_LOGIN_URL)
    refused = _sign_in(client, "stella", PASSWORD, ATTACKER, url=ADMIN_LOGIN_URL)
    assert REFUSED in refused.content.decode() and not _signed_in(client)
    # The count is shared: the portal's own sign-in page refuses that address for the account as well.
    assert REFUSED in _sign_in(client, "stella", PASSWORD, ATTACKER).content.decode()


def test_the_admin_refusing_a_right_password_of_a_non_staff_account_is_not_a_failure(client, world, settings) -> None:
    for _attempt in range(settings.SIGNIN_FAILURES_PER_ACCOUNT + 1):
        refused = _sign_in(client, "olivia", PASSWORD, OFFICE, url=ADMIN_LOGIN_URL)
        assert REFUSED not in refused.content.decode()
    assert not AuditEvent.objects.filter(action="account.signin_failed").exists()
    assert _sign_in(client, "olivia", PASSWORD, OFFICE).status_code == 302
