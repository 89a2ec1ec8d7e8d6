"""CEL expressions for policies: compiled once, checked before they are saved, evaluated fail-closed.

Nothing here touches the database: the policy services check what an admin writes with `expression_check`, and
`policy_evaluate` judges one fact document with compiled programs kept per expression text (a version's text never
changes, so the cache needs no invalidation).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import cel
from django.conf import settings
from django.core.exceptions import ValidationError

from governance import facts
from governance.models import Action, Approvers

# String literals are blanked before names are looked for in an expression, so 'service.foo' in quotes is no field.
_STRING = re.compile(r"""[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')""")
_ROOT = re.compile(r"(?<![\w.])([A-Za-z_]\w*)")
_SEGMENT = re.compile(r"\s*\.\s*([A-Za-z_]\w*)(\s*\()?")
_MACRO = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_MACRO_CALL = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(")
_PARSE_ERROR = re.compile(r"<input>:(\d+):(\d+): ([^\n]*)")


class ExpressionError(ValueError):
    """An expression that cannot be used; the message says where and why."""


@functools.lru_cache(maxsize=4096)
def compiled(source: str) -> cel.Program:
    """The program for one expression text; raises ExpressionError with the position of a syntax error."""
    try:
        return cel.compile(source)
    except ValueError as error:
        found = _PARSE_ERROR.findall(str(error))
        if not found:
            raise ExpressionError(str(error)) from None
        raise ExpressionError(
            "; ".join(f"Line {line}, column {column}: {message}" for line, column, message in found)
        ) from None


def _blank_strings(source: str) -> str:
    return _STRING.sub(lambda found: " " * len(found.group(0)), source)


def _comprehension_depth(text: str) -> int:
    """How deeply comprehensions nest in `text` (strings blanked): each level multiplies the work by a list's length."""
    spans = []
    for found in _MACRO_CALL.finditer(text):
        depth, end = 0, len(text)
        for position in range(found.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[position], 0)
            if depth == 0:
                end = position
                break
        spans.append((found.start(), end))
    return max((sum(1 for start, end in spans if start < at < end) + 1 for at, _ in spans), default=0)


def _unknown_references(source: str, program: cel.Program) -> list[str]:
    """Names and fields the expression uses that the fact document never has, read from the expression's text."""
    text = _blank_strings(source)
    roots = facts.group_names()
    bound = set(_MACRO.findall(text))
    problems = [
        f"unknown name {name!r}: the fact document has {', '.join(roots)}"
        for name in program.variables()
        if name not in roots and name not in bound
    ]
    sample, open_maps = facts.sample_document(), facts.open_maps()
    for found in _ROOT.finditer(text):
        root = found.group(1)
        if root not in roots or root in bound:
            continue
        node: Any = sample[root]
        path, position = root, found.end()
        while segment := _SEGMENT.match(text, position):
            name, call = segment.group(1), segment.group(2)
            if call or path in open_maps:
                break  # a method such as .exists(...), or a key that is data (an environment's slug)
            if not isinstance(node, dict):
                problems.append(f"{path}.{name}: {path} has no fields")
                break
            if name not in node:
                problems.append(f"{path}.{name}: the fact document has no such field (it has {', '.join(node)})")
                break
            node, path, position = node[name], f"{path}.{name}", segment.end()
    return problems


def expression_check(source: str, *, returns: type) -> cel.Program:
    """Compile and check one expression against the documented fact document; ExpressionError says what to fix."""
    limit = settings.GOVERNANCE["MAX_EXPRESSION_CHARS"]
    if len(source) > limit:
        raise ExpressionError(f"The expression is {len(source)} characters long; the limit is {limit}.")
    program = compiled(source)
    nested = len(_MACRO.findall(_blank_strings(source)))
    if nested > settings.GOVERNANCE["MAX_COMPREHENSIONS"]:
        raise ExpressionError(
            f"The expression uses {nested} comprehensions (all, exists, exists_one, map, filter); the limit is "
            f"{settings.GOVERNANCE['MAX_COMPREHENSIONS']}, so that no policy can keep a worker busy."
        )
    depth = _comprehension_depth(_blank_strings(source))
    if depth > settings.GOVERNANCE["MAX_COMPREHENSION_DEPTH"]:
        raise ExpressionError(
            f"The expression nests comprehensions {depth} deep; the limit is "
            f"{settings.GOVERNANCE['MAX_COMPREHENSION_DEPTH']} (three lists of a few hundred items nested would keep "
            "a worker busy for seconds)."
        )
    if problems := _unknown_references(source, program):
        raise ExpressionError("; ".join(problems))
    try:
        value = program.execute(cel.Context(facts.sample_document()))
    except KeyError as error:
        raise ExpressionError(
            f"The expression refers to the field {error}, which the fact document never has."
        ) from None
    except Exception as error:  # the CEL runtime raises several types; all mean the same here
        raise ExpressionError(f"The expression fails on a complete sample fact document: {error}") from None
    if not isinstance(value, returns) or (returns is not bool and isinstance(value, bool)):
        wanted = "true or false" if returns is bool else "a string"
        raise ExpressionError(f"The expression must give {wanted}; on a sample fact document it gave {value!r}.")
    return program


def version_check(
    *,
    match: str,
    rule: str,
    message: str,
    message_expression: str,
    action: str,
    approvers: str = "",
    approver_team: str = "",
    approvals_required: Any = 1,
) -> None:
    """Field errors for a policy version, each naming the field; raises ValidationError when there are any.
    Whether a named approver team exists is the service's question (this module touches no database)."""
    errors: dict[str, list[str]] = {}
    for name, source, returns in (
        ("match", match or "true", bool),
        ("rule", rule, bool),
        ("message_expression", message_expression, str),
    ):
        if not source.strip():
            if name == "rule":
                errors[name] = ["Write the CEL expression that must hold, for example change.strategy != 'rolling'."]
            continue
        try:
            expression_check(source, returns=returns)
        except ExpressionError as error:
            errors[name] = [str(error)]
    if action == Action.REQUIRE_APPROVAL:
        if approvers not in Approvers.values:
            errors["approvers"] = [f"Say who approves: one of {', '.join(Approvers.values)}."]
        elif approvers == Approvers.TEAM and not approver_team.strip():
            errors["approver_team"] = ["Name the team whose members approve (its slug, e.g. release-managers)."]
        if isinstance(approvals_required, bool) or not isinstance(approvals_required, int):
            errors["approvals_required"] = ["Give the number of approvals needed, a whole number from 1 to 10."]
        elif not 1 <= approvals_required <= 10:
            errors["approvals_required"] = [f"{approvals_required} approvals? Ask for 1 to 10."]
    elif action not in Action.values:
        errors["action"] = [f"Choose one of: {', '.join(Action.values)}."]
    if not message.strip() and not message_expression.strip():
        errors["message"] = ["Say what is wrong when the rule fails: a message, or a message expression."]
    if errors:
        raise ValidationError(errors)


@dataclass(frozen=True)
class Judged:
    """What a policy version said about one fact document."""

    policy: str
    version_id: int
    version: int
    action: str
    outcome: str  # "pass", "fail", "skip" (did not match) or "error"
    message: str = ""
    error: str = ""

    @property
    def blocks(self) -> bool:
        """A deny policy that failed, or a deny or require_approval policy that could not be evaluated: fail
        closed (no number of approvals makes up for a rule nobody can read)."""
        if self.action == Action.REQUIRE_APPROVAL:
            return self.outcome == "error"
        return self.action == Action.DENY and self.outcome in ("fail", "error")

    @property
    def needs_approval(self) -> bool:
        return self.action == Action.REQUIRE_APPROVAL and self.outcome == "fail"

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict, whose recursive deep copy cost more than judging the policy (profiled: 50 results
        # per request on POST /api/v1/policy-checks/).
        return {
            "policy": self.policy,
            "version_id": self.version_id,
            "version": self.version,
            "action": self.action,
            "outcome": self.outcome,
            "message": self.message,
            "error": self.error,
        }


def _run(source: str, context: cel.Context) -> Any:
    return compiled(source).execute(context)


def policy_evaluate(version: Any, context: cel.Context) -> Judged:
    """Judge one fact document (as a CEL context) with one policy version; never raises for the policy's faults."""
    name = version.policy.name
    base = {"policy": name, "version_id": version.pk, "version": version.number, "action": version.action}
    try:
        matched = _run(version.match or "true", context)
        if not isinstance(matched, bool):
            raise TypeError(f"match gave {matched!r}, not true or false")
        if not matched:
            return Judged(**base, outcome="skip")
        held = _run(version.rule, context)
        if not isinstance(held, bool):
            raise TypeError(f"rule gave {held!r}, not true or false")
    except Exception as error:  # missing field, type error, division by zero: the policy's fault, reported as such
        reason = f"{type(error).__name__}: {error}" if isinstance(error, KeyError) else str(error)
        return Judged(**base, outcome="error", message=f"Policy {name} could not be evaluated: {reason}", error=reason)
    if held:
        return Judged(**base, outcome="pass")
    message = version.message or f"Policy {name} does not allow this change."
    if version.message_expression:
        try:
            said = _run(version.message_expression, context)
            message = said if isinstance(said, str) and said else message
        except Exception as error:
            message = f"{message} (its message expression failed: {error})"
    return Judged(**base, outcome="fail", message=message)
