"""Policies as code: YAML files in a folder (one or many policies per file), each policy with its own tests.

A policy is accepted only if its expressions check and every one of its tests gives the expected outcome; a refused
policy keeps its previous version (if any) and the others sync. Policies synced earlier and gone from the files are
disabled and marked missing, never deleted. docs/governance.md describes the format.

Scorecards as code (scorecards/sync.py) read their files with the same `files`, `documents`, `facts_fill` and
`Report`: one reader of governed YAML, whatever it governs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cel
import yaml
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.db.models import QuerySet

from catalog import safe_yaml
from governance import expressions, facts, services
from governance.models import Policy, PolicyVersion, content_of

SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 1_000_000
FIELDS = {
    "name",
    "description",
    "match",
    "rule",
    "message",
    "messageExpression",
    "action",
    "approval",
    "enabled",
    "tests",
}
APPROVAL_FIELDS = {"approvers", "team", "count"}
OUTCOMES = ("pass", "fail", "skip")


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (file, item's name or "", message)

    def error(self, file: str, name: str, message: str) -> None:
        self.errors.append((file, name, message))


def facts_fill(partial: dict[str, Any]) -> dict[str, Any]:
    """A test's partial fact document over the complete sample: mappings merge, lists and keyed maps replace."""
    open_maps = facts.open_maps()

    def merge(base: Any, over: Any, path: str) -> Any:
        if isinstance(base, dict) and isinstance(over, dict) and path not in open_maps:
            merged = dict(base)
            for key, value in over.items():
                child = f"{path}.{key}" if path else str(key)
                merged[key] = merge(base[key], value, child) if key in base else value
            return merged
        return copy.deepcopy(over)

    return merge(facts.sample_document(), partial, "")


def files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(path for path in root.rglob("*") if path.suffix in SUFFIXES and path.is_file())


def documents(
    path: Path, rel: str, report: Report, *, plural: str = "policies", noun: str = "policy"
) -> list[dict[str, Any]]:
    """The mappings in one file: a document is one item (a policy), or has `policies:` with a list of them."""
    if path.is_symlink() or path.stat().st_size > MAX_FILE_BYTES:
        report.error(rel, "", f"Skipped: {noun} files must be regular files under {MAX_FILE_BYTES // 1_000_000} MB.")
        return []
    return text_documents(path.read_text(encoding="utf-8", errors="replace"), rel, report, plural=plural, noun=noun)


def text_documents(
    text: str, rel: str, report: Report, *, plural: str = "policies", noun: str = "policy"
) -> list[dict[str, Any]]:
    """`documents` for text already read (an admin's paste in the editor reads exactly as a file does)."""
    if "\0" in text:
        report.error(rel, "", f"{noun.capitalize()} files cannot contain NUL characters.")
        return []
    try:
        if "&" in text and any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=safe_yaml.Loader)):
            report.error(rel, "", f"YAML aliases (*name) are not allowed in {noun} files; write the values out.")
            return []
        loaded = [document for document in yaml.load_all(text, Loader=safe_yaml.Loader) if document is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        report.error(rel, "", f"This is not valid YAML{where}: {getattr(error, 'problem', None) or error}.")
        return []
    found: list[dict[str, Any]] = []
    for document in loaded:
        if isinstance(document, dict) and isinstance(document.get(plural), list):
            items = document[plural]
        elif isinstance(document, dict) and "name" in document:
            items = [document]
        else:
            report.error(rel, "", f"Each document must be a {noun} (with a name) or have a `{plural}:` list.")
            continue
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                found.append(item)
            else:
                report.error(rel, "", f"Each {noun} must be a mapping with a `name`.")
    return found


def _tests_run(item: dict[str, Any], version: PolicyVersion) -> list[str]:
    """Failures of the policy's own tests, each saying which test, what was expected and what came out."""
    tests = item.get("tests") or []
    if not isinstance(tests, list):
        return ["`tests` must be a list of {name, facts, expect}."]
    failures = []
    for index, test in enumerate(tests, start=1):
        label = f"test {index}" + (f" ({test['name']})" if isinstance(test, dict) and test.get("name") else "")
        if not isinstance(test, dict) or test.get("expect") not in OUTCOMES:
            failures.append(f"{label}: give `expect`, one of {', '.join(OUTCOMES)}.")
            continue
        partial = test.get("facts") or {}
        if not isinstance(partial, dict):
            failures.append(f"{label}: `facts` must be a mapping (a partial fact document).")
            continue
        judged = expressions.policy_evaluate(version, cel.Context(facts_fill(partial)))
        if judged.outcome != test["expect"]:
            said = f": {judged.message}" if judged.message else ""
            failures.append(f"{label}: expected {test['expect']}, got {judged.outcome}{said}")
        elif "message" in test and judged.message != test["message"]:
            failures.append(f"{label}: expected the message {test['message']!r}, got {judged.message!r}")
    return failures


def _expression(value: Any) -> str:
    """YAML reads `rule: true` as a boolean; CEL spells it `true`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _policy_sync(item: dict[str, Any], rel: str, report: Report, user: User | AnonymousUser | None) -> None:
    name = item["name"]
    unknown = sorted(set(item) - FIELDS)
    if unknown:
        report.error(rel, name, f"Unknown field(s) {', '.join(unknown)}; a policy has {', '.join(sorted(FIELDS))}.")
        return
    approval = item.get("approval") or {}
    if not isinstance(approval, dict) or set(approval) - APPROVAL_FIELDS:
        report.error(rel, name, "approval: a mapping of approvers (owner_leads, team or platform_admins), team, count.")
        return
    content = content_of(
        match=_expression(item.get("match", "true")) or "true",
        rule=_expression(item.get("rule", "")),
        message=str(item.get("message", "")),
        message_expression=str(item.get("messageExpression", "")),
        action=str(item.get("action", "deny")),
        approvers=str(approval.get("approvers", "")),
        approver_team=str(approval.get("team", "")).strip(),
        approvals_required=approval.get("count", 1),
    )
    try:
        expressions.version_check(**content)
        services.approver_team_check(content)
    except ValidationError as error:
        for field_name, messages in error.message_dict.items():
            report.error(rel, name, f"{field_name}: {' '.join(messages)}")
        return
    trial = PolicyVersion(policy=Policy(name=name), number=0, **content)
    if failures := _tests_run(item, trial):
        report.errors.extend((rel, name, f"not accepted: {failure}") for failure in failures)
        return
    existing = Policy.objects.select_related("current").filter(name=name).first()
    before = (
        (existing.current.content(), existing.enabled, existing.description) if existing and existing.current else None
    )
    try:
        policy = services.policy_save(
            user=user,
            name=name,
            description=str(item.get("description", "")),
            enabled=bool(item.get("enabled", True)),
            source_path=rel,
            **content,
        )
    except ValidationError as error:
        for field_name, messages in error.message_dict.items():
            report.error(rel, name, f"{field_name}: {' '.join(messages)}")
        return
    assert policy.current is not None
    after = (policy.current.content(), policy.enabled, policy.description)
    if existing is None:
        report.created.append(name)
    elif before == after and existing.missing_since is None:
        report.unchanged.append(name)
    else:
        report.changed.append(name)


def folder_sync(
    *,
    root: Path,
    plural: str,
    noun: str,
    one: Callable[[dict[str, Any], str, Report], None],
    synced: QuerySet[Any],
    disable: Callable[[Any], object],
) -> Report:
    """Sync every `noun` in the files under `root` (or the one file `root`) with `one(item, file, report)`; of the
    `synced` objects (those from files), each gone from them is passed to `disable`. A name defined twice is reported
    and the second definition ignored."""
    report = Report()
    seen: dict[str, str] = {}
    base = root if root.is_dir() else root.parent
    for path in files(root):
        rel = str(path.relative_to(base))
        for item in documents(path, rel, report, plural=plural, noun=noun):
            name = item["name"]
            if name in seen:
                report.error(rel, name, f"Defined twice: first in {seen[name]}; this one is ignored.")
                continue
            seen[name] = rel
            one(item, rel, report)
    if root.is_file():  # one file is a source of its own: the other files' items are not missing from it
        synced = synced.filter(source_path=root.name)
    for gone in synced.exclude(name__in=seen).filter(missing_since__isnull=True):
        disable(gone)
        report.missing.append(gone.name)
    return report


def report_write(command: BaseCommand, report: Report, *, path: Path, plural: str) -> None:
    """A sync command's output: what changed, then each problem on a line naming its file and item."""
    command.stdout.write(
        f"{plural.capitalize()} from {path}: created {', '.join(report.created) or 'none'}, "
        f"changed {', '.join(report.changed) or 'none'}, {len(report.unchanged)} unchanged, "
        f"{len(report.missing)} missing from the source."
    )
    for name in report.missing:
        command.stdout.write(command.style.WARNING(f"  missing from source, disabled: {name}"))
    for file, name, message in report.errors:
        command.stdout.write(command.style.ERROR(f"  {file}: {name + ': ' if name else ''}{message}"))
    if report.errors:
        command.stdout.write(command.style.WARNING(f"{len(report.errors)} problem(s); the valid {plural} were synced."))


def policy_sync(*, root: Path, user: User | AnonymousUser | None = None) -> Report:
    """Sync every policy file under `root` (or the one file `root`); platform admins or the system (None) only."""
    services._require_admin(user)
    return folder_sync(
        root=root,
        plural="policies",
        noun="policy",
        one=lambda item, rel, report: _policy_sync(item, rel, report, user),
        synced=Policy.objects.exclude(source_path=""),
        disable=lambda policy: services.policy_disable_missing(policy=policy, user=user),
    )
