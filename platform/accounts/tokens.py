"""Personal API tokens on the request path: read from the cache when they can be, from the database when not.

A token and its user are cached for a minute under the token's public prefix, so that an API request makes no
database query at all when its answer is cached too (on Redis, the token, the rate-limit count and the page come
back in one round trip: see throttling.py). The secret is still checked on every request against the cached digest.

Revoking a token, deleting it, or deactivating or deleting its user writes a tombstone in its place that outlives
any cached copy; entries are only ever added where nothing is (SET NX), so a request that read the token just before
it was revoked cannot put it back. Other changes to a user (a name, staff status) reach its tokens at once through
a plain delete, or within a minute at worst if a request was reading the user at that moment.
"""

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import DEFERRED
from django.db.models.signals import post_delete, post_save

from accounts.models import ApiToken

ENTRY_SECONDS = 60
TOMBSTONE_SECONDS = 5 * ENTRY_SECONDS
REVOKED = "revoked"
# Never cached: a password hash has no business in a shared cache. It stays deferred on a cached user.
_User = get_user_model()
_USER_ALL = [field.attname for field in _User._meta.concrete_fields]
_USER_FIELDS = [name for name in _USER_ALL if name != "password"]
_USER_SLOTS = [_USER_ALL.index(name) for name in _USER_FIELDS]
_TOKEN_FIELDS = [field.attname for field in ApiToken._meta.concrete_fields]


def entry_key(prefix: str) -> str:
    return f"apitoken:{prefix}"


def entry_store(token: ApiToken) -> None:
    """Cache a token that was just read from the database, unless something (a tombstone) is there already."""
    if not settings.API_TOKEN_CACHE:
        return
    user = token.user
    entry = {
        "token": [getattr(token, name) for name in _TOKEN_FIELDS],
        "user": [getattr(user, name) for name in _USER_FIELDS],
    }
    cache.add(entry_key(token.prefix), entry, ENTRY_SECONDS)


def entry_load(entry: dict[str, Any]) -> ApiToken | None:
    """The token and its user as the database had them when the entry was made; None for an entry of another shape
    (made before a release that changed the token's or the user's fields), which the caller reads afresh."""
    token_values, user_values = entry.get("token"), entry.get("user")
    if not isinstance(token_values, list) or not isinstance(user_values, list):
        return None
    if len(token_values) != len(_TOKEN_FIELDS) or len(user_values) != len(_USER_FIELDS):
        return None
    token = ApiToken.from_db(DEFAULT_DB_ALIAS, _TOKEN_FIELDS, token_values)
    # Every field's value in place, the password DEFERRED: what from_db works out field by field for a partial row.
    values: list[Any] = [DEFERRED] * len(_USER_ALL)
    for slot, value in zip(_USER_SLOTS, user_values, strict=True):
        values[slot] = value
    user = _User.from_db(DEFAULT_DB_ALIAS, _USER_ALL, values)
    ApiToken.user.field.set_cached_value(token, user)
    return token


def entry_forget(prefixes: list[str], *, for_good: bool) -> None:
    """Tombstones for tokens that must be refused, else drop the cached copies: at once, and again once the
    transaction commits (a request may have cached the old row in between). A revocation that then rolls back leaves
    its token refused for a few minutes: the safe side."""
    if not prefixes or not settings.API_TOKEN_CACHE:
        return
    keys = [entry_key(prefix) for prefix in prefixes]

    def forget() -> None:
        if for_good:
            cache.set_many(dict.fromkeys(keys, REVOKED), TOMBSTONE_SECONDS)
        else:
            cache.delete_many(keys)

    forget()
    held_forget(keys)
    transaction.on_commit(forget)
    transaction.on_commit(lambda: held_forget(keys))


@dataclass(slots=True)
class Held:
    """What a round trip to the cache brought back for a token, held in this process for a moment (see
    throttling.token_round_trip): its entry, and its rate-limit window's count with the requests counted here since."""

    digest: str
    window: int
    entry: dict[str, Any]
    count: int
    unsynced: int
    taken_at: float


_held: dict[str, Held] = {}
_held_lock = threading.Lock()


def held_get(key: str, *, digest: str, window: int) -> Held | None:
    """The entry held for this token (`key`), for this secret's digest and this window; `fresh` says whether it may
    still answer (see `fresh`)."""
    held = _held.get(key)
    if held is None or held.digest != digest or held.window != window:
        return None
    return held


def fresh(held: Held) -> bool:
    """Whether a held entry is younger than API_TOKEN_HOLD_SECONDS."""
    return time.monotonic() - held.taken_at < settings.API_TOKEN_HOLD_SECONDS


def held_put(key: str, *, digest: str, window: int, entry: Any, count: int) -> None:
    """Hold what a round trip brought back: only a cached token (not a tombstone, not a miss), only if holding is on."""
    with _held_lock:
        if isinstance(entry, dict) and settings.API_TOKEN_HOLD_SECONDS > 0:
            _held[key] = Held(digest, window, entry, count, 0, time.monotonic())
        else:
            _held.pop(key, None)


def held_forget(keys: list[str] | None = None) -> None:
    """Let go of the entries held for these tokens' keys (all with None)."""
    with _held_lock:
        if keys is None:
            _held.clear()
        for key in keys or ():
            _held.pop(key, None)


def _user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    # Signing in saves last_login alone, which a cached token does not carry: no query for the user's tokens then.
    if (
        kwargs.get("created")
        or not settings.API_TOKEN_CACHE
        or set(kwargs.get("update_fields") or ()) == {"last_login"}
    ):
        return
    prefixes = list(ApiToken.objects.filter(user_id=instance.pk).values_list("prefix", flat=True))
    entry_forget(prefixes, for_good=not instance.is_active)


def _token_deleted(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    # Also for each token of a deleted user: the delete cascades, and Django sends this for every row it removes.
    entry_forget([instance.prefix], for_good=True)


def signals_connect() -> None:
    user_model = get_user_model()
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="apitoken-cache-user-saved")
    post_delete.connect(_token_deleted, sender=ApiToken, dispatch_uid="apitoken-cache-token-deleted")
