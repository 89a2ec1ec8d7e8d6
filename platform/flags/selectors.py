"""Reading flags as the OFREP endpoints need them: one compiled, cached document per service and environment.

The compiled set is plain JSON (evaluation.py reads it), cached in the shared cache under a generation number that
every change of the service's flags bumps after it commits (services._changed), so the next poll after a change
sees it and never a stale set. Segments are inlined when compiling; a segment change bumps every generation.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from django.core.cache import cache

from flags.models import Flag, FlagSetting, SdkKey, Segment, sdk_key_digest

SET_TTL = 3600
KEY_TTL = 60


def _generation(service_id: int) -> str:
    names = ["flags:gen", f"flags:gen:{service_id}"]
    values = cache.get_many(names)
    missing = {name: secrets.token_hex(6) for name in names if name not in values}
    if missing:
        cache.set_many(missing, None)
        values |= missing
    return f"{values['flags:gen']}.{values[f'flags:gen:{service_id}']}"


def flag_sets_forget(service_id: int) -> None:
    cache.set(f"flags:gen:{service_id}", secrets.token_hex(6), None)


def flag_sets_forget_all() -> None:
    cache.set("flags:gen", secrets.token_hex(6), None)


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


def flag_set(service_id: int, environment_id: int) -> dict[str, Any]:
    key = f"flags:set:{service_id}:{environment_id}:{_generation(service_id)}"
    found = cache.get(key)
    if found is None:
        found = compile_set(service_id, environment_id)
        cache.set(key, found, SET_TTL)
    return found  # type: ignore[no-any-return]


def sdk_key_lookup(raw: str) -> tuple[int, int] | None:
    """(service id, environment id) of a live SDK key, cached briefly by digest (a revocation forgets it at once)."""
    digest = sdk_key_digest(raw)
    name = f"flags:sdk:{digest}"
    found = cache.get(name)
    if found is None:
        row = (
            SdkKey.objects.filter(digest=digest, revoked_at__isnull=True)
            .values_list("service_id", "environment_id")
            .first()
        )
        found = list(row) if row else []
        cache.set(name, found, KEY_TTL)
    return (found[0], found[1]) if found else None


def sdk_key_forget(digest: str) -> None:
    cache.delete(f"flags:sdk:{digest}")


def flags_for_service(service_id: int) -> list[Flag]:
    return list(Flag.objects.filter(service_id=service_id).prefetch_related("settings__environment").order_by("key"))
