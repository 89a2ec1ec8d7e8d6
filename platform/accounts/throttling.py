"""Rate limits counted atomically in the cache (Redis when configured): per API token in a fixed one-minute window, and
failed sign-ins per account and client address and per client address."""

import hashlib
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache, RedisSerializer
from django.http import HttpRequest
from redis.exceptions import NoScriptError
from rest_framework.throttling import BaseThrottle

from accounts import tokens
from accounts.models import ApiToken
from portal.cache import script_keys

WINDOW_SECONDS = 60
HOLD_SHARE = 32


class ApiTokenRateThrottle(BaseThrottle):
    """Limits requests made with a personal API token; browser sessions are not throttled here.

    The count is atomic, so concurrent requests on several web processes can never both take the last slot: on
    Redis one script increments the window's counter and sets its expiry (one round trip); on other caches
    `cache.add` then `cache.incr`.

    A view may name cache keys it is about to read (`throttle_prefetch(request)`): they are fetched in the same round
    trip as the count and left on the request as `throttle_prefetched`: (the keys, {key: value} of those present).
    """

    def allow_request(self, request: Any, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        counted = getattr(request, "token_counted", None)
        if counted is not None and counted[0] == window:  # counted while the token was fetched (Redis)
            _window, count, prefetch, found = counted
        else:
            prefetch = view.throttle_prefetch(request) if hasattr(view, "throttle_prefetch") else []
            count, found = window_count(_counter_key(token.digest, window), prefetch)
        if prefetch:
            request.throttle_prefetched = (prefetch, found)
        self._retry_after = (window + 1) * WINDOW_SECONDS - now
        return count <= settings.API_TOKEN_RATE_LIMIT

    def wait(self) -> float | None:
        return max(1.0, self._retry_after)


def counted_allows(counted: tuple[int, int, list[str], dict[str, Any]] | None) -> bool | None:
    """What ApiTokenRateThrottle will say of a request whose count `token_round_trip` took: whether it is within the
    limit, or None when the count is not this window's (the throttle takes it again) or was not taken."""
    if counted is None or counted[0] != int(time.time() // WINDOW_SECONDS):
        return None
    return counted[1] <= settings.API_TOKEN_RATE_LIMIT


def _counter_key(digest: str, window: int) -> str:
    # By the secret's digest, not the token's id, so that the count can be taken before the token is looked up
    # (see token_round_trip); a wrong secret counts against a key of its own, never against the real token.
    return f"ratelimit:token:{digest[:32]}:{window}"


def token_round_trip(
    *, entry_key: str, digest: str, prefetch: list[str]
) -> tuple[Any, tuple[int, int, list[str], dict[str, Any]] | None]:
    """What the cache holds for a token (`entry_key`) and, on Redis, in the same round trip: the rate-limit count of
    this request and the `prefetch` keys the view will read. Returns (cached token or None, (window, count, prefetch,
    found) or None when the count is left to the throttle).

    A busy token does not make this round trip for every request: what it brought back is held in the process
    (tokens.Held) for API_TOKEN_HOLD_SECONDS, and the requests counted meanwhile are added to the shared count with
    the next round trip. Only while the token is far from its limit, though: a process counts on its own at most a
    HOLD_SHARE-th of what is left of the window's allowance, so near the limit every request is counted in Redis,
    exactly. A revocation reaches this process at once (tokens.entry_forget) and every other within the hold."""
    backend = caches["default"]
    if not settings.API_TOKEN_CACHE or not isinstance(backend, RedisCache):
        return cache.get(entry_key) if settings.API_TOKEN_CACHE else None, None
    window = int(time.time() // WINDOW_SECONDS)
    held = tokens.held_get(entry_key, digest=digest, window=window)
    share = (settings.API_TOKEN_RATE_LIMIT - held.count) // HOLD_SHARE if held is not None else 0
    if held is not None and not prefetch and held.unsynced < share and tokens.fresh(held):
        held.unsynced += 1
        held.count += 1
        return held.entry, (window, held.count, prefetch, {})
    add = 1 + (held.unsynced if held is not None else 0)
    client, keys = script_keys([entry_key, _counter_key(digest, window), *prefetch])
    try:
        entry, count, values = client.evalsha(_TOKEN_SHA, len(keys), *keys, WINDOW_SECONDS + 5, add)
    except NoScriptError:
        entry, count, values = client.eval(_TOKEN_SCRIPT, len(keys), *keys, WINDOW_SECONDS + 5, add)
    found = {name: _SERIALIZER.loads(value) for name, value in zip(prefetch, values, strict=True) if value is not None}
    cached = _SERIALIZER.loads(entry) if entry is not None else None
    tokens.held_put(entry_key, digest=digest, window=window, entry=cached, count=int(count))
    return cached, (window, int(count), prefetch, found)


# INCR, and on the window's first request EXPIRE, then the values of any further keys: one atomic command, so one
# round trip.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if #KEYS == 1 then return {count, {}} end
return {count, redis.call('MGET', unpack(KEYS, 2))}
"""
_COUNT_SHA = hashlib.sha1(_COUNT_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by their SHA-1
# The cached token, then the count as above (plus any requests counted in the process meanwhile), then the prefetched
# keys.
_TOKEN_SCRIPT = """
local entry = redis.call('GET', KEYS[1])
local count = redis.call('INCRBY', KEYS[2], ARGV[2])
if count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
if #KEYS == 2 then return {entry, count, {}} end
return {entry, count, redis.call('MGET', unpack(KEYS, 3))}
"""
_TOKEN_SHA = hashlib.sha1(_TOKEN_SCRIPT.encode()).hexdigest()  # noqa: S324
_SERIALIZER = RedisSerializer()  # how Django's Redis cache stores values (CACHES sets no other serializer)


def window_count(key: str, prefetch: list[str], *, timeout: int = WINDOW_SECONDS + 5) -> tuple[int, dict[str, Any]]:
    """Add one to the counter `key`, which expires `timeout` seconds after its first count; return it, and the cached
    values of `prefetch` that are present."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # The same keys (scoped to this installation) and value format as cache.add, cache.incr and cache.get_many
        # below, in a script.
        client, keys = script_keys([key, *prefetch])
        try:
            count, values = client.evalsha(_COUNT_SHA, len(keys), *keys, timeout)
        except NoScriptError:  # not yet in this Redis's script cache: EVAL runs it and puts it there
            count, values = client.eval(_COUNT_SCRIPT, len(keys), *keys, timeout)
        found = {name: value for name, value in zip(prefetch, values, strict=True) if value is not None}
        return int(count), {name: _SERIALIZER.loads(value) for name, value in found.items()}
    cache.add(key, 0, timeout=timeout)
    try:
        count = cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.add(key, 1, timeout=timeout)
        count = 1
    return count, cache.get_many(prefetch) if prefetch else {}


# Sign-in throttling. A username alone is never locked: anyone could then keep its owner out for good by typing wrong
# passwords. What is locked is the pair (account, client address) after SIGNIN_FAILURES_PER_ACCOUNT failures, and a
# client address after SIGNIN_FAILURES_PER_ADDRESS failures on any accounts (one address trying many accounts); each
# lock ends SIGNIN_LOCKOUT_SECONDS after it began, and failures older than that are forgotten.


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind SIGNIN_TRUSTED_PROXIES reverse proxies the address the outermost of
    them saw (counted from the right of X-Forwarded-For, the only entries a client cannot write itself)."""
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.SIGNIN_TRUSTED_PROXIES
    if proxies > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            address = forwarded[-min(proxies, len(forwarded))]
    return address[:64]


def _signin_keys(username: str, address: str) -> dict[str, str]:
    pair = hashlib.sha256(f"{username.casefold()}\0{address}".encode()).hexdigest()[:32]
    alone = hashlib.sha256(address.encode()).hexdigest()[:32]
    return {
        "account": f"signin:failures:account:{pair}",
        "address": f"signin:failures:address:{alone}",
        "account_lock": f"signin:lock:account:{pair}",
        "address_lock": f"signin:lock:address:{alone}",
    }


def signin_wait(*, username: str, address: str) -> int:
    """Seconds until `address` may try to sign in as `username` again; 0 when it may now."""
    keys = _signin_keys(username, address)
    until = max(cache.get_many([keys["account_lock"], keys["address_lock"]]).values(), default=0.0)
    return max(0, math.ceil(until - time.time()))


def signin_failure_count(*, username: str, address: str) -> list[str]:
    """Count a failed sign-in; return the locks it started ("account", "address"), usually none."""
    keys = _signin_keys(username, address)
    lockout = settings.SIGNIN_LOCKOUT_SECONDS
    limits = {"account": settings.SIGNIN_FAILURES_PER_ACCOUNT, "address": settings.SIGNIN_FAILURES_PER_ADDRESS}
    started = []
    for kind, limit in limits.items():
        count, _found = window_count(keys[kind], [], timeout=lockout)
        if count >= limit:
            # The lock holds its end time; the count starts again from nothing once the lock is over.
            cache.set(keys[f"{kind}_lock"], time.time() + lockout, timeout=lockout)
            cache.delete(keys[kind])
            started.append(kind)
    return started


def signin_success(*, username: str, address: str) -> None:
    """A right password forgets that account's failures from that address (not the address's own count: one account
    an attacker holds must not reset its attempts on everyone else's)."""
    cache.delete(_signin_keys(username, address)["account"])
