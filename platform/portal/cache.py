"""The shared cache: Django's Redis backend with one client object per connection pool instead of one per cache call,
and every key scoped to this installation.

Two installations (staging and production, two benches) may share one Redis database; without a scope they would
serve each other's catalog pages, counts, cached tokens, rate-limit counts and sessions. Every key the cache makes,
and every key a Lua script on the cache's Redis touches (`script_keys`), starts with `installation_id()`: the
RUNWAY_INSTALLATION_ID setting, or else the database's name and a random id that migrate stored in it.
"""

import re
import secrets
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.core.signals import setting_changed
from django.db import DatabaseError, connections, transaction

_identity: str | None = None


def installation_id() -> str:
    """Who this installation is: RUNWAY_INSTALLATION_ID, or "<database name>:<random id stored in it>".

    Read on the first cache use, not when settings load (a fresh database has no table yet, and `migrate` must run),
    then kept for the life of the process: one query per process, none per request. Before the table exists (during
    the first `migrate`) the scope is the database's name alone, and is looked up again on the next use."""
    global _identity
    if _identity is not None:
        return _identity
    if settings.RUNWAY_INSTALLATION_ID:
        _identity = _label(settings.RUNWAY_INSTALLATION_ID, limit=64)
        return _identity
    connection = connections["default"]
    name = _label(PurePath(str(connection.settings_dict["NAME"])).name, limit=40)
    from portal.models import Installation

    try:
        with transaction.atomic(using=connection.alias):  # a savepoint: a missing table must not spoil the caller's
            row, _created = Installation.objects.using(connection.alias).get_or_create(
                pk=1, defaults={"secret": secrets.token_hex(8)}
            )
    except DatabaseError:  # not migrated yet: nothing to cache for, nothing worth keeping apart
        return f"{name}:unmigrated"
    _identity = f"{name}:{row.secret}"
    return _identity


def _label(text: str, *, limit: int) -> str:
    # Redis takes any bytes, but Django warns about keys memcached would refuse (spaces, control characters).
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:limit] or "runway"


def _identity_forget(*, setting: str, **kwargs: Any) -> None:
    global _identity
    if setting in {"RUNWAY_INSTALLATION_ID", "DATABASES"}:
        _identity = None


setting_changed.connect(_identity_forget, dispatch_uid="portal-installation-id")


def make_key(key: str, key_prefix: str, version: int) -> str:
    """CACHES' KEY_FUNCTION: Django's key, behind this installation's identity."""
    return f"{installation_id()}:{key_prefix}:{version}:{key}"


def script_keys(names: Iterable[str]) -> tuple[Any, list[str]]:
    """For a Lua script on the default cache's Redis: its client, and `names` as the keys the cache itself stores
    them under (scoped to this installation), so that the script and `cache.get` agree and nothing is left unscoped.
    The only way Runway code should build a raw Redis key."""
    backend: Any = caches["default"]  # a RedisCache: its client is Django's, untyped in the stubs
    keys = [backend.make_key(name) for name in names]
    return backend._cache.get_client(keys[0], write=True), keys


class _ReusingClient(RedisCacheClient):
    """Django builds a new `redis.Redis` for every cache call, which costs about as much CPU as the call's round
    trip. A client is thread-safe (it takes a connection from its pool for each command), so one per pool serves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # Django's, untyped in the stubs
        client = self._clients.get(id(pool))  # pools live as long as this object, so their ids stay theirs
        if client is None:
            client = self._clients[id(pool)] = redis.Redis(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ReusingClient
