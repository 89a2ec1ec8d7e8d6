"""Reading flags as the OFREP endpoints need them: one compiled, cached document per service and environment.

The compiled set is plain JSON (evaluation.py reads it), cached in the shared cache under a generation that every
flag or segment change replaces after it commits (services._changed, segment_save), so the next poll after a change
sees it and never a stale set: a set compiled from the old rows can only land under the old generation. Segments
are inlined when compiling.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from django.core.cache import cache

from flags.models import Flag, FlagSetting, SdkKey, Segment

SET_TTL = 3600
KEY_TTL = 60
GENERATION = "flags:gen"


def generation() -> str:
    """The current generation of every compiled set; a new one is made when there is none."""
    found = cache.get(GENERATION)
    if found is None:
        found = secrets.token_hex(6)
        if not cache.add(GENERATION, found, None):  # another process made one first: use theirs
            found = cache.get(GENERATION, found)
    return str(found)


def flag_sets_forget() -> None:
    """After a flag or segment change commits: every compiled set is stale. One generation for all services, not
    one per service, so that an OFREP request reads it in the round trip that also counts its rate and finds its
    key (ofrep._authenticate); a change is rare next to evaluations, and each set recompiles once, lazily."""
    cache.set(GENERATION, secrets.token_hex(6), None)


def compile_set(service_id: int, environment_id: int) -> dict[str, Any]:
    """Every flag of a service as one environment serves it, with an ETag over the whole."""
    segments = {segment.slug: segment.conditions for segment in Segment.objects.all()}
    settings = FlagSetting.objects.filter(flag__service_id=service_id, environment_id=environment_id).select_related(
        "flag__service"
    )
    flags: dict[str, Any] = {}
    for setting in settings:
        flag = setting.flag
        flags[flag.key] = {
            "type": flag.type,
            "variants": flag.variants,
            "version": flag.version,
            "service": flag.service.slug,
            "enabled": setting.enabled,
            "default": setting.default_variant,
            "rules": [_inline(rule, segments) for rule in setting.rules],
            "rollout": [[variant, weight] for variant, weight in setting.rollout.items()],
        }
    body = json.dumps(flags, sort_keys=True, separators=(",", ":"))
    return {"etag": '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"', "flags": flags}


def _inline(rule: dict[str, Any], segments: dict[str, list[Any]]) -> dict[str, Any]:
    when = [
        {"op": "all", "conditions": segments.get(condition["value"], [])}
        if condition.get("op") == "segment"
        else condition
        for condition in rule["when"]
    ]
    return rule | {"when": when}


def flag_set(service_id: int, environment_id: int, *, current: str | None = None) -> dict[str, Any]:
    """The compiled set, from the cache under the current generation (`current`, when the caller has read it)."""
    key = f"flags:set:{current or generation()}:{service_id}:{environment_id}"
    found = cache.get(key)
    if found is None:
        found = compile_set(service_id, environment_id)
        cache.set(key, found, SET_TTL)
    return found  # type: ignore[no-any-return]


def sdk_key_name(digest: str) -> str:
    return f"flags:sdk:{digest}"


def sdk_key_lookup(digest: str, cached: list[int] | None = None) -> tuple[int, int] | None:
    """(service id, environment id) of a live SDK key by its digest, cached briefly (a revocation forgets it at once);
    `cached` is the cache's entry when the caller has already read it."""
    found = cached
    if found is None:
        row = (
            SdkKey.objects.filter(digest=digest, revoked_at__isnull=True)
            .values_list("service_id", "environment_id")
            .first()
        )
        found = list(row) if row else []
        cache.set(sdk_key_name(digest), found, KEY_TTL)
    return (found[0], found[1]) if found else None


def sdk_key_forget(digest: str) -> None:
    cache.delete(sdk_key_name(digest))


def flags_for_service(service_id: int) -> list[Flag]:
    return list(Flag.objects.filter(service_id=service_id).prefetch_related("settings__environment").order_by("key"))
