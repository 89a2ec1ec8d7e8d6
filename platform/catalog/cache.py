"""A catalog-wide version number that every catalog write bumps, so that reads can be cached without going stale.

Model signals cover writes through the ORM one object at a time; bulk writes (the import) call `bump()` themselves.
The version lives in the shared cache (Redis in production), so every web process sees the same one; like every
cache key it is scoped to this installation (portal/cache.py), so another database sharing that Redis has its own.

`read()` fetches the version and entries cached under it in one round trip (each entry remembers the version it was
made for, so an entry of an older catalog is simply ignored and later overwritten); `write()` stores one.
"""

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

KEY = "catalog:version"
ENTRY_SECONDS = 300  # an upper bound: entries of an unchanged catalog are rebuilt at least this often

T = TypeVar("T")


def version() -> int:
    value = cache.get(KEY)
    if value is None:
        cache.add(KEY, 1, timeout=None)
        value = cache.get(KEY, 1)
    return int(value)


def entry_key(name: str, *parts: str) -> str:
    """A short cache key for an entry named `name`, whatever the length of its parts (a query string, say)."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=16).hexdigest()
    return f"catalog:{name}:{digest}"


def read(keys: Iterable[str], *, found: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """The current version and, of `keys`, the entries made for it; in one round trip to the cache.

    `found`: what the cache held for KEY and `keys`, already fetched along with something else (see `prefetch`).
    """
    keys = list(keys)
    if found is None:
        found = cache.get_many([KEY, *keys])
    current = found.get(KEY)
    if current is None:  # a new (or flushed) cache: no entry can be trusted
        return version(), {}
    current = int(current)
    fresh = {}
    for key in keys:
        entry = found.get(key)
        if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == current:
            fresh[key] = entry[1]
    return current, fresh


def prefetch(keys: Iterable[str]) -> list[str]:
    """What to fetch for `read(keys, found=...)`."""
    return [KEY, *keys]


def write(key: str, made_for: int, value: Any, *, timeout: int = ENTRY_SECONDS) -> None:
    """Cache `value`, computed from the catalog at version `made_for` (read before computing it)."""
    cache.set(key, (made_for, value), timeout)


def remembered(key: str, compute: Callable[[], T], *, timeout: int = ENTRY_SECONDS) -> T:
    """`compute()`, cached until the catalog next changes."""
    current, fresh = read([key])
    if key in fresh:
        return fresh[key]  # type: ignore[no-any-return]
    value = compute()
    write(key, current, value, timeout=timeout)
    return value


def _bump() -> None:
    try:
        cache.incr(KEY)
    except ValueError:
        cache.add(KEY, 2, timeout=None)


def bump() -> None:
    """Invalidate every cached catalog read: now, and again when the transaction commits, because a reader in
    between could cache the old rows under the new version."""
    _bump()
    transaction.on_commit(_bump)


def _on_change(sender: Any, **kwargs: Any) -> None:
    bump()


def connect() -> None:
    from catalog.models import Api, Dependency, Resource, Service, System, Tag
    from teams.models import Team
    from techdocs.models import Runbook  # the catalog's "stale runbooks" filter reads them

    for model in (Service, System, Dependency, Tag, Team, Api, Resource, Runbook):
        post_save.connect(_on_change, sender=model, dispatch_uid=f"catalog-version-save-{model.__name__}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"catalog-version-delete-{model.__name__}")
    m2m_changed.connect(_on_change, sender=Service.tags.through, dispatch_uid="catalog-version-tags")
