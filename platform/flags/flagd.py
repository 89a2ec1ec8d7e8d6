"""A service's flags in one environment as a flagd flag definition file (https://flagd.dev/reference/flag-definitions/,
schema https://flagd.dev/schema/v0/flags.json), so the service can run flagd beside it and keep evaluating its flags
while Runway is unreachable.

It is built from the compiled set the OFREP endpoints serve (selectors.compile_set: segments already inlined), so
the file says what Runway says. Runway's rules become one JsonLogic `if` (first match wins, as in Runway), its
fractional rollouts flagd's `fractional`, and a flag that is off here `"state": "DISABLED"` (the SDK's code default
applies, as with Runway). Where the two engines differ:

- flagd places a targeting key in a rollout with its own hash (MurmurHash3 over the flag key and the targeting key),
  not Runway's SHA-256: each is sticky and keeps the weights, but a user in Runway's 10 % is not necessarily in
  flagd's.
- A rollout without a `targetingKey` is an error in Runway (TARGETING_KEY_MISSING); flagd's rollout then gives no
  answer and the default variant is served.
- A comparison on an attribute of the wrong kind (`gt` on text) is reason ERROR with the default variant in Runway;
  in flagd it is simply false.
- flagd weights are integers: percentages with decimals are scaled by 100 (12.5 % → 1250 out of 10000).
- flagd object variants must be objects: a flag with a list among its object variants is left out and named in the
  file's metadata (`runwayOmitted`).
"""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpResponse, JsonResponse

from catalog.models import Service
from deployments.models import Environment
from flags import selectors

SCHEMA = "https://flagd.dev/schema/v0/flags.json"


def _var(attribute: str) -> dict[str, Any]:
    return {"var": attribute}


def condition(test: dict[str, Any]) -> Any:
    """One Runway condition (segments inlined as `all`) as JsonLogic that holds exactly when Runway's would: a
    missing attribute fails every test but `neq` and `not_in`, as in flags.evaluation.condition_holds."""
    op = test["op"]
    if op == "all":
        return _all([condition(inner) for inner in test["conditions"]])
    attribute, value = test["attribute"], test["value"]
    present = {"!==": [_var(attribute), None]}
    if op == "eq":
        return {"===": [_var(attribute), value]}
    if op == "neq":
        return {"!==": [_var(attribute), value]}
    if op == "in":
        return {"in": [_var(attribute), value]}
    if op == "not_in":
        return {"!": {"in": [_var(attribute), value]}}
    if op in ("starts_with", "ends_with"):
        return {"and": [present, {op: [_var(attribute), value]}]}
    if op == "contains":  # JsonLogic's `in` on text is a substring test
        return {"and": [present, {"in": [value, _var(attribute)]}]}
    symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    return {"and": [present, {symbol: [_var(attribute), value]}]}


def _all(tests: list[Any]) -> Any:
    if not tests:
        return True  # Runway: a rule (or a segment) with no conditions holds for everyone
    return tests[0] if len(tests) == 1 else {"and": tests}


def fractional(weights: list[list[Any]]) -> dict[str, Any]:
    """Runway's [[variant, percent], ...] as flagd's `fractional` with integer weights in the same proportions."""
    scale = 1 if all(float(weight).is_integer() for _variant, weight in weights) else 100
    return {"fractional": [[variant, int(round(float(weight) * scale))] for variant, weight in weights]}


def targeting(flag: dict[str, Any]) -> dict[str, Any] | None:
    """The flag's rules and rollout as one JsonLogic expression; None when it has neither (the default applies)."""
    branches: list[Any] = []
    for rule in flag["rules"]:
        result = fractional(rule["rollout"]) if rule.get("rollout") else rule["variant"]
        branches += [_all([condition(test) for test in rule["when"]]), result]
    fallback = fractional(flag["rollout"]) if flag["rollout"] else None
    if not branches:
        return fallback
    if fallback is not None:
        branches.append(fallback)  # else null: flagd serves the default variant
    return {"if": branches}


def _representable(flag: dict[str, Any]) -> bool:
    values = flag["variants"].values()
    if flag["type"] == "object":
        return all(isinstance(value, dict) for value in values)
    if flag["type"] in ("integer", "float"):
        return all(math.isfinite(value) and abs(value) <= 2**53 - 1 for value in values)
    return True


def flag_set_export(*, service: Service, environment: Environment) -> dict[str, Any]:
    """The flagd document for one service and environment."""
    compiled = selectors.compile_set(service.pk, environment.pk)
    flags: dict[str, Any] = {}
    omitted = []
    for key, flag in sorted(compiled["flags"].items()):
        if not _representable(flag):
            omitted.append(key)
            continue
        entry: dict[str, Any] = {
            "state": "ENABLED" if flag["enabled"] else "DISABLED",
            "variants": flag["variants"],
            "defaultVariant": flag["default"],
            "metadata": {"runwayVersion": flag["version"], "service": service.slug},
        }
        rules = targeting(flag)
        if rules is not None:
            entry["targeting"] = rules
        flags[key] = entry
    metadata: dict[str, Any] = {
        "flagSetId": f"{service.slug}/{environment.slug}",
        "version": compiled["etag"].strip('"'),
    }
    if omitted:
        metadata["runwayOmitted"] = ", ".join(omitted)
    return {"$schema": SCHEMA, "flags": flags, "metadata": metadata}


def download(*, service: Service, environment: Environment) -> HttpResponse:
    """The flagd file as an attachment: the page and the API answer the same bytes."""
    response = JsonResponse(flag_set_export(service=service, environment=environment), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{service.slug}-{environment.slug}.flagd.json"'
    return response
