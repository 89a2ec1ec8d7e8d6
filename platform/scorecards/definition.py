"""A scorecard as written (a mapping from its YAML file or the editor): checked, normalised and evaluated.

The expressions are governance's (`governance.expressions`): the same compiled-program cache, size and comprehension
limits, and the same save-time check against the complete sample fact document. A scorecard judges a service with no
change proposed, so its rules may read only the groups of a service document (`facts.service_group_names()`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cel
from django.core.exceptions import ValidationError
from django.http import QueryDict

from catalog.models import slug_validator
from governance import expressions, facts
from governance.sync import facts_fill

FIELDS = {"name", "title", "description", "enabled", "filter", "catalogFilter", "levels", "tests"}
LEVEL_FIELDS = {"name", "rules"}
RULE_FIELDS = {"key", "name", "rule", "why", "fix"}
TEST_FIELDS = {"name", "facts", "expect", "failing"}
CATALOG_FILTERS = ("owner", "system", "tier", "lifecycle", "tag")
MAX_LEVELS = 10
MAX_RULES = 60
ASK = {"name": "what the rule checks", "why": "why it matters", "fix": "how to fix a failing service"}
NONE = "none"  # a test's `expect` for a service in scope that reaches no level
SKIP = "skip"  # ... and for one the scorecard does not score


@dataclass(frozen=True)
class Outcome:
    """What a scorecard says about one fact document."""

    applies: bool
    rank: int = 0
    level: str = ""
    failing: list[dict[str, str]] = field(default_factory=list)  # [{"rule": key, "error": ""}]
    passed: int = 0
    total: int = 0


def _expression(value: Any) -> str:
    if isinstance(value, bool):  # YAML reads `rule: true` as a boolean; CEL spells it `true`
        return "true" if value else "false"
    return str(value).strip() if value is not None else ""


def _check_expression(source: str) -> str:
    """Governance's check, plus: no group a service document lacks. Returns the problem, or ""."""
    try:
        program = expressions.expression_check(source, returns=bool)
    except expressions.ExpressionError as error:
        return str(error)
    allowed = facts.service_group_names()
    if outside := sorted(set(program.variables()) & (set(facts.group_names()) - set(allowed))):
        return (
            f"{', '.join(outside)}: a scorecard judges a service with no change proposed; its document has "
            f"{', '.join(allowed)}."
        )
    return ""


def catalog_filter_parse(value: Any) -> tuple[QueryDict, list[str]]:
    """`catalogFilter`: a mapping of the catalog page's filters (owner, system, tier, lifecycle, tag)."""
    data = QueryDict(mutable=True)
    if value in (None, "", {}):
        return data, []
    if not isinstance(value, Mapping):
        return data, [f"catalogFilter must be a mapping of {', '.join(CATALOG_FILTERS)}."]
    problems = []
    for key, item in value.items():
        if key not in CATALOG_FILTERS:
            problems.append(f"catalogFilter.{key}: unknown filter; use {', '.join(CATALOG_FILTERS)}.")
        elif isinstance(item, dict | list):
            problems.append(f"catalogFilter.{key}: give one value.")
        else:
            data[key] = str(item).lower() if isinstance(item, bool) else str(item)
    if problems:
        return data, problems
    from catalog.filters import ServiceFilterSet
    from catalog.models import Service

    filterset = ServiceFilterSet(data, queryset=Service.objects.none())
    if not filterset.is_valid():
        for key, messages in filterset.errors.items():
            problems.append(f"catalogFilter.{key}: {' '.join(messages)}")
    return data, problems


def catalog_filter_apply(services: Any, wanted: Mapping[str, str]) -> Any:
    """`services` (a Service queryset) narrowed by catalog filters already checked with `catalog_filter_parse`."""
    if not wanted:
        return services
    from catalog.filters import ServiceFilterSet

    data = QueryDict(mutable=True)
    data.update(dict(wanted))
    return ServiceFilterSet(data, queryset=services).qs


def definition_check(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised definition, or ValidationError naming each problem by where it is (levels[1].rules[0].rule)."""
    errors: list[str] = []
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        errors.append(f"Unknown field(s) {', '.join(map(str, unknown))}; a scorecard has {', '.join(sorted(FIELDS))}.")
    name = str(raw.get("name", "")).strip()
    try:
        slug_validator(name)
        if not name:
            raise ValidationError("Give the scorecard a name (a slug, e.g. production-readiness).")
    except ValidationError as error:
        errors.append(f"name: {' '.join(error.messages)}")
    title = str(raw.get("title") or name).strip()
    if len(title) > 200:
        errors.append("title: at most 200 characters.")
    description = str(raw.get("description") or "").strip()
    if len(description) > 2000:
        errors.append("description: at most 2000 characters.")
    applies_to = _expression(raw.get("filter", "true")) or "true"
    if problem := _check_expression(applies_to):
        errors.append(f"filter: {problem}")
    catalog_filter, problems = catalog_filter_parse(raw.get("catalogFilter"))
    errors.extend(problems)
    levels: list[dict[str, Any]] = []
    raw_levels = raw.get("levels")
    if not isinstance(raw_levels, list) or not raw_levels:
        errors.append("levels: give a list of levels, lowest first, each with a name and rules.")
        raw_levels = []
    elif len(raw_levels) > MAX_LEVELS:
        errors.append(f"levels: at most {MAX_LEVELS}.")
    keys: set[str] = set()
    names: set[str] = set()
    count = 0
    for index, level in enumerate(raw_levels[:MAX_LEVELS]):
        where = f"levels[{index}]"
        if not isinstance(level, Mapping):
            errors.append(f"{where}: a level is a mapping with a name and rules.")
            continue
        if unknown := sorted(set(level) - LEVEL_FIELDS):
            errors.append(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; a level has name and rules.")
        level_name = str(level.get("name") or "").strip()
        if not level_name or len(level_name) > 50 or level_name.lower() in (NONE, SKIP):
            errors.append(f"{where}.name: give a name of 1 to 50 characters (not 'none' or 'skip').")
        elif level_name in names:
            errors.append(f"{where}.name: {level_name} is used twice.")
        names.add(level_name)
        rules: list[dict[str, str]] = []
        raw_rules = level.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            errors.append(f"{where}.rules: give the level at least one rule.")
            raw_rules = []
        for position, rule in enumerate(raw_rules):
            at = f"{where}.rules[{position}]"
            count += 1
            if count > MAX_RULES:
                errors.append(f"{at}: a scorecard has at most {MAX_RULES} rules.")
                break
            if not isinstance(rule, Mapping):
                errors.append(f"{at}: a rule is a mapping with key, name, rule, why and fix.")
                continue
            if unknown := sorted(set(rule) - RULE_FIELDS):
                fields = ", ".join(sorted(RULE_FIELDS))
                errors.append(f"{at}: unknown field(s) {', '.join(map(str, unknown))}; a rule has {fields}.")
            key = str(rule.get("key") or "").strip()
            try:
                slug_validator(key)
                if not key:
                    raise ValidationError("Give the rule a key (a slug, e.g. has-runbook).")
            except ValidationError as error:
                errors.append(f"{at}.key: {' '.join(error.messages)}")
            if key in keys:
                errors.append(f"{at}.key: {key} is used twice.")
            keys.add(key)
            text = {part: str(rule.get(part) or "").strip() for part in ("name", "why", "fix")}
            for part, limit in (("name", 200), ("why", 2000), ("fix", 2000)):
                if not text[part]:
                    errors.append(f"{at}.{part}: say {ASK[part]}.")
                elif len(text[part]) > limit:
                    errors.append(f"{at}.{part}: at most {limit} characters.")
            source = _expression(rule.get("rule"))
            if not source:
                errors.append(f"{at}.rule: write the CEL expression a service must satisfy, e.g. service.adrs >= 1.")
            elif problem := _check_expression(source):
                errors.append(f"{at}.rule: {problem}")
            rules.append({"key": key, "name": text["name"], "rule": source, "why": text["why"], "fix": text["fix"]})
        levels.append({"name": level_name, "rules": rules})
    tests = raw.get("tests") or []
    if not isinstance(tests, list):
        errors.append("tests: a list of {name, facts, expect}.")
        tests = []
    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "title": title,
        "description": description,
        "enabled": bool(raw.get("enabled", True)),
        "filter": applies_to,
        "catalogFilter": dict(catalog_filter.items()),
        "levels": levels,
        "tests": tests,
    }


def evaluate(definition: Mapping[str, Any], context: cel.Context) -> Outcome:
    """Judge one fact document; never raises for the scorecard's faults (a rule that errors fails, saying why)."""
    try:
        applies = expressions.compiled(definition["filter"]).execute(context)
        if not isinstance(applies, bool):
            raise TypeError(f"filter gave {applies!r}, not true or false")
    except Exception:  # the scorecard's fault: a filter that cannot say yes does not score the service
        applies = False
    if not applies:
        return Outcome(applies=False)
    failing: list[dict[str, str]] = []
    rank, reached, passed, total = 0, True, 0, 0
    for number, level in enumerate(definition["levels"], start=1):
        level_passed = True
        for rule in level["rules"]:
            total += 1
            error = ""
            try:
                held = expressions.compiled(rule["rule"]).execute(context)
                if not isinstance(held, bool):
                    raise TypeError(f"gave {held!r}, not true or false")
            except Exception as exc:  # missing field, wrong type, bad timestamp: the rule's fault, shown as such
                held = False
                error = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
            if held:
                passed += 1
            else:
                level_passed = False
                failing.append({"rule": rule["key"], "error": error})
        reached = reached and level_passed
        if reached:
            rank = number
    level_name = definition["levels"][rank - 1]["name"] if rank else ""
    return Outcome(applies=True, rank=rank, level=level_name, failing=failing, passed=passed, total=total)


def tests_run(definition: Mapping[str, Any]) -> list[str]:
    """Failures of the scorecard's own tests, each saying which test, what was expected and what came out."""
    failures = []
    levels = [NONE, SKIP, *(level["name"] for level in definition["levels"])]
    for index, test in enumerate(definition.get("tests") or [], start=1):
        label = f"test {index}" + (f" ({test['name']})" if isinstance(test, Mapping) and test.get("name") else "")
        if not isinstance(test, Mapping) or test.get("expect") not in levels:
            failures.append(f"{label}: give `expect`, one of {', '.join(map(str, levels))}.")
            continue
        if unknown := sorted(set(test) - TEST_FIELDS):
            failures.append(f"{label}: unknown field(s) {', '.join(map(str, unknown))}.")
            continue
        partial = test.get("facts") or {}
        if not isinstance(partial, Mapping):
            failures.append(f"{label}: `facts` must be a mapping (a partial fact document).")
            continue
        try:
            context = cel.Context(facts_fill(dict(partial)))
        except Exception as error:  # a value CEL cannot hold
            failures.append(f"{label}: its facts cannot be used: {error}")
            continue
        outcome = evaluate(definition, context)
        got = (outcome.level or NONE) if outcome.applies else SKIP
        if got != test["expect"]:
            said = ""
            if outcome.failing:
                said = "; failing: " + ", ".join(
                    f"{item['rule']}" + (f" ({item['error']})" if item["error"] else "") for item in outcome.failing
                )
            failures.append(f"{label}: expected {test['expect']}, got {got}{said}")
        elif "failing" in test:
            expected = sorted(map(str, test["failing"] or []))
            found = sorted(item["rule"] for item in outcome.failing)
            if expected != found:
                failures.append(f"{label}: expected failing rules {expected}, got {found}")
    return failures
