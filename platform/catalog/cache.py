"""A catalog-wide version number that every catalog write bumps, so that reads can be cached without going stale.

Model signals cover writes through the ORM one object at a time; bulk writes (the import) call `bump()` themselves.
The version lives in the shared cache (Redis in production), so every web process sees the same one.
"""

from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

KEY = "catalog:version"


def version() -> int:
    value = cache.get(KEY)
    if value is None:
        cache.add(KEY, 1, timeout=None)
        value = cache.get(KEY, 1)
    return int(value)


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
