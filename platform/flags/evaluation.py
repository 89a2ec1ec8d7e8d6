"""Flag evaluation: a compiled flag (plain JSON, as cached per environment) and an OpenFeature evaluation context in,
an OFREP answer out. Pure functions, no database: the OFREP views and the "what would this user get" preview share it.

Reasons follow OpenFeature: DISABLED (the flag is off here: the SDK's code default applies, so no value is sent),
TARGETING_MATCH (a rule matched), SPLIT (the fractional rollout chose), STATIC (no targeting at all), DEFAULT
(targeting exists but nobody matched it), ERROR (a rule could not be evaluated for this context: the default variant
is served and the error named in the metadata, so one bad attribute never breaks the caller).

Fractional rollouts are sticky and uniform: a targeting key's bucket is the first 8 bytes of SHA-256 over the flag key
and the targeting key, read as a fraction of 2**64; the same key always lands in the same bucket for a flag, and
different flags bucket independently.
"""

from __future__ import annotations

import hashlib
from typing import Any

OPERATORS = ("eq", "neq", "in", "not_in", "starts_with", "ends_with", "contains", "gt", "gte", "lt", "lte", "segment")
MAX_CONTEXT_ATTRIBUTES = 200
MAX_CONTEXT_BYTES = 32_768


class ContextError(Exception):
    """The evaluation context is unusable as a whole: OFREP's INVALID_CONTEXT / TARGETING_KEY_MISSING / PARSE_ERROR."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class RuleError(Exception):
    pass


def context_read(body: object) -> dict[str, Any]:
    """The `context` of an OFREP request body, checked: an object of attributes with an optional string
    `targetingKey`."""
    if not isinstance(body, dict):
        raise ContextError("PARSE_ERROR", "The request body must be a JSON object with a `context` object.")
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise ContextError("INVALID_CONTEXT", "`context` must be a JSON object of attributes.")
    if len(context) > MAX_CONTEXT_ATTRIBUTES:
        raise ContextError("INVALID_CONTEXT", f"`context` has more than {MAX_CONTEXT_ATTRIBUTES} attributes.")
    key = context.get("targetingKey")
    if key is not None and not isinstance(key, str):
        raise ContextError("INVALID_CONTEXT", "`targetingKey` must be a string.")
    return context


def bucket(flag_key: str, targeting_key: str) -> float:
    """Where a targeting key falls for a flag, in [0, 100)."""
    digest = hashlib.sha256(f"{flag_key}\x00{targeting_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def split(flag_key: str, targeting_key: str, weights: list[list[Any]]) -> str:
    """The variant of a fractional rollout: `weights` is [[variant, percent], ...] summing to 100."""
    point = bucket(flag_key, targeting_key)
    total = 0.0
    for variant, weight in weights:
        total += float(weight)
        if point < total:
            return str(variant)
    return str(weights[-1][0])


def condition_holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    op = condition["op"]
    if op == "all":  # a segment, inlined when the flag set was compiled
        return all(condition_holds(inner, context) for inner in condition["conditions"])
    attribute = condition["attribute"]
    if attribute not in context:
        return op in ("neq", "not_in")
    actual, expected = context[attribute], condition["value"]
    if op == "eq":
        return bool(actual == expected)
    if op == "neq":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if op == "not_in":
        return actual not in expected
    if op in ("starts_with", "ends_with", "contains"):
        if not isinstance(actual, str):
            raise RuleError(f"`{attribute}` is {type(actual).__name__}, not text, so `{op}` cannot apply")
        if op == "starts_with":
            return actual.startswith(expected)
        if op == "ends_with":
            return actual.endswith(expected)
        return expected in actual
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        raise RuleError(f"`{attribute}` is {type(actual).__name__}, not a number, so `{op}` cannot apply")
    return {"gt": actual > expected, "gte": actual >= expected, "lt": actual < expected, "lte": actual <= expected}[op]


def evaluate(key: str, flag: dict[str, Any] | None, context: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, OFREP body) for one flag of a compiled set; `flag` None is an unknown key."""
    if flag is None:
        return 404, {"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": f"Flag '{key}' was not found"}
    metadata = {"version": flag["version"], "service": flag["service"]}
    if not flag["enabled"]:
        return 200, {"key": key, "reason": "DISABLED", "variant": "", "metadata": metadata}
    variants = flag["variants"]
    targeting_key = context.get("targetingKey")
    try:
        for rule in flag["rules"]:
            if all(condition_holds(condition, context) for condition in rule["when"]):
                if rule.get("rollout"):
                    if not targeting_key:
                        return 400, _missing_key(key)
                    variant = split(key, targeting_key, rule["rollout"])
                    return 200, _served(key, variants, variant, "SPLIT", metadata | {"rule": rule["name"]})
                return 200, _served(
                    key, variants, rule["variant"], "TARGETING_MATCH", metadata | {"rule": rule["name"]}
                )
    except (RuleError, KeyError, TypeError) as error:
        detail = str(error) if isinstance(error, RuleError) else f"{type(error).__name__}: {error}"
        return 200, _served(key, variants, flag["default"], "ERROR", metadata | {"error": detail})
    if flag["rollout"]:
        if not targeting_key:
            return 400, _missing_key(key)
        return 200, _served(key, variants, split(key, targeting_key, flag["rollout"]), "SPLIT", metadata)
    reason = "DEFAULT" if flag["rules"] else "STATIC"
    return 200, _served(key, variants, flag["default"], reason, metadata)


def _served(key: str, variants: dict[str, Any], variant: str, reason: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": variants[variant], "variant": variant, "reason": reason, "metadata": metadata}


def _missing_key(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "errorCode": "TARGETING_KEY_MISSING",
        "errorDetails": "This flag rolls out by percentage: the context needs a `targetingKey` to place the caller.",
    }
