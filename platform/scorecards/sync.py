"""Scorecards as code: YAML files (one scorecard per document, or `scorecards:` with a list), each with its tests.

Read with governance's reader of governed YAML (`governance.sync`: the same size, alias and nesting rules, the same
per-item report, the same partial fact documents in tests). A scorecard is accepted only if its expressions check and
its tests give the expected levels; a refused one keeps what it had, and the others sync. One synced earlier and gone
from the files is disabled and marked missing, never deleted. docs/scorecards.md describes the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError

from governance import sync as governed
from governance.sync import Report
from scorecards import services
from scorecards.models import Scorecard


def _messages(error: ValidationError) -> list[str]:
    return (
        [message for messages in error.message_dict.values() for message in messages]
        if hasattr(error, "error_dict")
        else list(error.messages)
    )


def _one(item: dict[str, Any], rel: str, report: Report, user: User | AnonymousUser | None) -> None:
    name = item["name"]
    existing = Scorecard.objects.filter(name=name).first()
    before = (existing.digest, existing.enabled) if existing else None
    try:
        scorecard = services.scorecard_save(user=user, raw=item, source_path=rel)
    except ValidationError as error:
        for message in _messages(error):
            report.error(rel, name, message)
        return
    if existing is None:
        report.created.append(name)
    elif before == (scorecard.digest, scorecard.enabled) and existing.missing_since is None:
        report.unchanged.append(name)
    else:
        report.changed.append(name)


def scorecard_sync(*, root: Path, user: User | AnonymousUser | None = None) -> Report:
    """Sync every scorecard file under `root` (or the one file `root`); platform admins or the system (None) only."""
    services._require_admin(user)
    return governed.folder_sync(
        root=root,
        plural="scorecards",
        noun="scorecard",
        one=lambda item, rel, report: _one(item, rel, report, user),
        synced=Scorecard.objects.exclude(source_path=""),
        disable=lambda scorecard: services.scorecard_disable_missing(scorecard=scorecard, user=user),
    )
