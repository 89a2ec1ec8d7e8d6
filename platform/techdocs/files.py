"""Runbook and ADR files as they live next to the code: parsing on import, writing on export.

ADRs follow the adr-tools layout (`docs/adr/0003-use-postgresql.md`: `# 3. Title`, `Date:`, `## Status`...);
MADR's front matter (`status:`, `date:`, `deciders:`) is read too. Runbooks are Markdown with optional front
matter (`title`, `reviewed_at`, `reviewed_by`, `review_interval_days`).
"""

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from techdocs.markdown import LimitError, limits_check, split_front_matter
from techdocs.models import ADR, Runbook

ADR_FILENAME = re.compile(r"^(\d{1,4})-([a-z0-9][a-z0-9-]*)\.md$")
RUNBOOK_FILENAME = re.compile(r"^runbook(?:-([a-z0-9][a-z0-9-]*))?\.md$")
# The value runs to the end of its line and is stripped afterwards: a lazy `(.+?)\s*$` retried the trailing `\s*`
# at every character, so a title padded with 50,000 spaces took 15 s to read.
_TITLE = re.compile(r"^#\s+(?:(\d+)\.\s+)?(\S.*)$", re.MULTILINE)
_FIELD = re.compile(r"^(Date|Deciders)\s*:\s*(\S.*)$", re.MULTILINE | re.IGNORECASE)
_STATUS_SECTION = re.compile(r"^##\s+Status\s*$\n(.*?)(?=^##\s|\Z)", re.MULTILINE | re.DOTALL | re.IGNORECASE)
_LINK_NUMBER = re.compile(r"\]\((?:\./)?(\d{1,4})-[^)]*\.md\)")
_STATUSES = {choice.value for choice in ADR.Status}


class FileError(ValueError):
    """A file that cannot be read as a runbook or ADR; the message says what to fix."""


def _limits_check(text: str) -> None:
    """The limits rendering applies, so an imported document is refused (and reported) rather than stored unshowable."""
    try:
        limits_check(text=text)
    except LimitError as error:
        raise FileError(str(error)) from error


@dataclass
class ParsedADR:
    number: int
    title: str
    status: str
    date: dt.date
    deciders: str
    body: str
    supersedes: list[int] = field(default_factory=list)
    superseded_by: int | None = None


@dataclass
class ParsedRunbook:
    slug: str
    title: str
    body: str
    review_interval_days: int
    reviewed_at: dt.datetime | None
    reviewed_by: str


def _date(value: Any, *, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as error:
        raise FileError(f"{what} must be a date like 2026-01-31, not {str(value)[:40]!r}.") from error


def adr_parse(*, filename: str, text: str) -> ParsedADR:
    """Read one ADR file; the number comes from the file name, the status from the text."""
    match = ADR_FILENAME.match(PurePosixPath(filename).name)
    if not match:
        raise FileError("ADR files are named NNNN-some-title.md, for example 0003-use-postgresql.md.")
    number = int(match.group(1))
    _limits_check(text)
    meta, body = split_front_matter(text=text)
    title_match = _TITLE.search(body)
    title = str(meta.get("title") or (title_match.group(2) if title_match else "")).strip()
    if not title:
        raise FileError("An ADR needs a title: a first line like '# 3. Use PostgreSQL for the ledger'.")
    fields = {key.lower(): value.strip() for key, value in _FIELD.findall(body)}
    date = _date(meta.get("date") or fields.get("date") or dt.date.today(), what="Date")
    deciders = meta.get("deciders") or fields.get("deciders") or ""
    if isinstance(deciders, list):
        deciders = ", ".join(str(name) for name in deciders)

    status_text = str(meta.get("status") or "")
    section = _STATUS_SECTION.search(body)
    if section:
        status_text = status_text or section.group(1)
    status_line = status_text.strip().splitlines()[0].strip().lower() if status_text.strip() else "proposed"
    superseded_by = None
    if status_line.startswith("superseded"):
        status = ADR.Status.SUPERSEDED.value
        numbers = _LINK_NUMBER.findall(status_line)
        superseded_by = int(numbers[0]) if numbers else None
    else:
        status = status_line.split()[0].strip(".:*") if status_line else "proposed"
        if status not in _STATUSES:
            raise FileError(f"Unknown status {status!r}: use Proposed, Accepted, Rejected, Deprecated or Superseded.")
    supersedes = [
        int(number)
        for line in status_text.splitlines()
        if line.strip().lower().startswith("supersedes")
        for number in _LINK_NUMBER.findall(line)
    ]
    return ParsedADR(
        number=number,
        title=title[:200],
        status=status,
        date=date,
        deciders=str(deciders)[:300],
        body=text,
        supersedes=supersedes,
        superseded_by=superseded_by,
    )


def runbook_parse(*, filename: str, text: str) -> ParsedRunbook:
    """Read one runbook file; `runbook.md` gets the slug `runbook`, `runbook-deploy.md` the slug `deploy`."""
    match = RUNBOOK_FILENAME.match(PurePosixPath(filename).name)
    if not match:
        raise FileError("Runbook files are named runbook.md or runbook-<name>.md.")
    slug = match.group(1) or "runbook"
    _limits_check(text)
    meta, body = split_front_matter(text=text)
    title_match = _TITLE.search(body)
    title = str(meta.get("title") or (title_match.group(2) if title_match else slug.replace("-", " ").title()))
    interval = meta.get("review_interval_days", 90)
    if not isinstance(interval, int) or not 1 <= interval <= 3650:
        raise FileError("review_interval_days must be a whole number of days between 1 and 3650.")
    reviewed_at = None
    if meta.get("reviewed_at"):
        day = _date(meta["reviewed_at"], what="reviewed_at")
        reviewed_at = dt.datetime.combine(day, dt.time(12, 0), tzinfo=dt.UTC)
    return ParsedRunbook(
        slug=slug,
        title=title.strip()[:200],
        body=body,
        review_interval_days=interval,
        reviewed_at=reviewed_at,
        reviewed_by=str(meta.get("reviewed_by") or "")[:150],
    )


def doc_parse(*, path: str, text: str) -> ParsedADR | ParsedRunbook:
    """Read a runbook or, under an `adr/` folder, an ADR; raises ValueError (FileError included) saying what to fix."""
    name = path.rsplit("/", 1)[-1]
    if "/adr/" in f"/{path}":
        return adr_parse(filename=name, text=text)
    return runbook_parse(filename=name, text=text)


def adr_filename(adr: ADR) -> str:
    from django.utils.text import slugify

    return f"{adr.number:04d}-{slugify(adr.title)[:60] or 'decision'}.md"


def adr_render(adr: ADR) -> str:
    """The ADR as an adr-tools file: imported ones keep their text; ones written in Runway get the sections."""
    if adr.body:
        return adr.body
    lines = [f"# {adr.number}. {adr.title}", "", f"Date: {adr.date.isoformat()}"]
    if adr.deciders:
        lines.append(f"Deciders: {adr.deciders}")
    lines += ["", "## Status", ""]
    if adr.status == ADR.Status.SUPERSEDED and adr.superseded_by is not None:
        newer = adr.superseded_by
        lines.append(f"Superseded by [{newer.number}. {newer.title}]({adr_filename(newer)})")
    else:
        lines.append(adr.get_status_display())
    for older in adr.supersedes.all():
        lines.append(f"Supersedes [{older.number}. {older.title}]({adr_filename(older)})")
    for heading, text in (("Context", adr.context), ("Decision", adr.decision), ("Consequences", adr.consequences)):
        lines += ["", f"## {heading}", "", text.strip()]
    return "\n".join(lines).rstrip() + "\n"


def runbook_render(runbook: Runbook) -> str:
    """The runbook as a file with front matter, so that review state survives an export and re-import."""
    meta: dict[str, Any] = {"title": runbook.title, "review_interval_days": runbook.review_interval_days}
    if runbook.last_reviewed_at:
        meta["reviewed_at"] = runbook.last_reviewed_at.date().isoformat()
    if runbook.last_reviewed_by:
        meta["reviewed_by"] = runbook.last_reviewed_by
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n{runbook.body}"


def runbook_filename(runbook: Runbook) -> str:
    return "runbook.md" if runbook.slug == "runbook" else f"runbook-{runbook.slug}.md"
