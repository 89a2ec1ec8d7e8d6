"""Catalog-as-code import: read a folder tree (or an archive) of descriptors with their runbooks and ADRs.

The import is an idempotent upsert keyed on kind + namespace + name. It reports each entity's problems (file,
document index, field, what is wrong), imports every valid entity in one transaction, writes nothing for an
entity whose descriptor and docs are unchanged, and flags (never deletes) entities gone from their source.

Writes are bulk operations rather than one service call per entity: the per-entity functions cost ~10 queries
each, and a 10,000-component tree must import in seconds (on PostgreSQL the big tables are written with COPY, see
catalog.bulk). Validation reuses the models' own field validation.
"""

import contextlib
import gc
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
import tempfile
import threading
import urllib.parse
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import structlog
import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.utils import timezone
from guardian.models import GroupObjectPermission

from audit.models import AuditEvent
from catalog import bulk, descriptors, safe_yaml
from catalog import cache as catalog_cache
from catalog import documents as catalog_documents
from catalog.descriptors import DescriptorError, Entity, Location, Ref
from catalog.models import (
    Api,
    CatalogSource,
    Dependency,
    EntitySource,
    Resource,
    Service,
    System,
    Tag,
    UnresolvedRelation,
)
from catalog.permissions import SERVICE_OWNER_PERMS, SYSTEM_OWNER_PERMS
from portal import tasks as portal_tasks
from portal import validators
from teams.models import Membership, Team
from techdocs import files as doc_files
from techdocs.models import Runbook

log = structlog.get_logger(__name__)

MAX_FILE_BYTES = 1_000_000
MAX_PATH_CHARS = 1000  # EntitySource.path, Runbook.source_path and ADR.source_path
MAX_ARCHIVE_BYTES = 200_000_000
DESCRIPTOR_SUFFIXES = (".yaml", ".yml")
_Loader = safe_yaml.Loader


@dataclass
class Problem:
    """One thing that stopped an entity (or a file) from being imported, and where."""

    file: str
    message: str
    document: int | None = None
    entity: str | None = None
    field: str | None = None


@dataclass
class Report:
    source: str
    created: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    updated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unchanged: int = 0
    missing: list[str] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    # Imported, but worth knowing: relations still waiting for their target.
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "created": dict(self.created),
            "updated": dict(self.updated),
            "unchanged": self.unchanged,
            "missing": self.missing,
            "errors": [asdict(problem) for problem in self.errors],
            "warnings": [asdict(problem) for problem in self.warnings],
        }


# --- reading a tree -----------------------------------------------------------------------------------------------


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


@dataclass
class Tree:
    """What was read from a folder: parsed entities, docs per component folder, and each descriptor's digest."""

    entities: list[Entity] = field(default_factory=list)
    docs: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    digests: dict[str, str] = field(default_factory=dict)  # descriptor file → digest of it and its folder's docs
    skipped: set[str] = field(default_factory=set)  # descriptor files unchanged since their last clean import
    descriptors_in: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # folder → files
    # Documents of another app's apiVersion (openslo/v1), by apiVersion, for that app's handler.
    foreign: dict[str, list["ForeignDocument"]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class ForeignDocument:
    """A document in a descriptor file that another app reads (an OpenSLO SLO next to catalog-info.yaml)."""

    path: str
    index: int
    body: Any


# apiVersion → handler(documents=, source=, report=, actor=, skipped=). Apps above the catalog register here in their
# AppConfig.ready(), so the importer carries their documents without importing them (lower apps do not reach up).
# A handler runs inside the import's transaction after the catalog's entities are written, and reports each
# document it refuses in report.errors.
_FOREIGN_HANDLERS: dict[str, Any] = {}


def foreign_documents_register(api_version: str, handler: Any) -> None:
    _FOREIGN_HANDLERS[api_version] = handler


def _retirement_refusal(service: Service, lifecycle: str) -> str | None:
    """Why a descriptor may not change this service, when it may not: retirement goes through Runway's decommission
    workflow (which stops, archives and revokes), and a decommissioned service is a read-only record."""
    if service.lifecycle == Service.Lifecycle.DECOMMISSIONED:
        return f"{service.slug} is decommissioned: its record is read-only; this descriptor's changes were not kept."
    if service.moves_into_or_out_of_retirement(lifecycle):
        return (
            f"{service.slug} cannot move from {service.lifecycle} to {lifecycle} by import: retiring a service goes "
            "through its decommission workflow in Runway. Nothing of this component was changed."
        )
    return None


def _component_folder(parts: Sequence[str]) -> str:
    """The folder a doc belongs to: the one holding its `docs` folder ("." at the top); `parts` of a relative path."""
    docs_at = parts.index("docs")
    return "/".join(parts[:docs_at]) if docs_at else "."


def _parent(rel: str) -> str:
    """The folder of a relative POSIX path, "." at the top (as PurePosixPath(rel).parent.as_posix())."""
    return rel.rpartition("/")[0] or "."


def _tree_walk(root: Path, report: Report) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry under `root` that is not a folder, as (relative path, entry), in the order of os.walk with sorted
    names; hidden folders and links to folders are not entered (those leading outside `root` are reported). One
    scandir per folder, and the entries' own types instead of a stat per file."""
    root_path = str(root)
    stack = [""]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(os.path.join(root_path, folder) if folder else root_path) as listing:
                entries = list(listing)
        except OSError:
            continue  # as os.walk: a folder that cannot be listed is left out
        folders: list[os.DirEntry[str]] = []
        files: list[os.DirEntry[str]] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (folders if is_dir else files).append(entry)
        keep = []
        for entry in folders:
            if entry.name.startswith(".") or entry.is_symlink():
                if not entry.name.startswith(".") and not _inside(root, Path(entry.path)):
                    rel = f"{folder}/{entry.name}" if folder else entry.name
                    report.errors.append(Problem(rel, "This folder is a link that leads outside the imported folder."))
                continue
            keep.append(entry.name)
        for entry in sorted(files, key=lambda e: e.name):
            yield (f"{folder}/{entry.name}" if folder else entry.name), entry
        stack.extend(f"{folder}/{name}" if folder else name for name in sorted(keep, reverse=True))


def tree_read(root: Path, report: Report, known: dict[str, str] | None = None) -> Tree:
    """Read every descriptor and doc under `root`; nothing outside `root` is opened, links are not followed.

    A descriptor file whose digest (its bytes and its folder's docs) is in `known` is not parsed again: its
    entities imported cleanly last time and nothing about them changed.
    """
    root = root.resolve()
    known = known or {}
    tree = Tree()
    raw_descriptors: dict[str, bytes] = {}
    raw_docs: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for rel, entry in _tree_walk(root, report):
        filename = entry.name
        parts = rel.split("/")
        is_descriptor = filename.endswith(DESCRIPTOR_SUFFIXES)
        # Only runbooks and numbered ADRs are read; other Markdown (docs/index.md, docs/adr/README.md) is not ours.
        is_doc = "docs" in parts[:-1] and bool(
            doc_files.RUNBOOK_FILENAME.match(filename)
            or (parts[-2] == "adr" and doc_files.ADR_FILENAME.match(filename))
        )
        if not (is_descriptor or is_doc):
            continue
        if entry.is_symlink() and not _inside(root, Path(entry.path)):
            report.errors.append(Problem(rel, "This file is a link that leads outside the imported folder."))
            continue
        try:
            is_file = entry.is_file()
        except OSError:
            is_file = False
        if not is_file:
            continue
        if len(rel) > MAX_PATH_CHARS:  # the longest path a source record (and a doc's source_path) can hold
            report.errors.append(Problem(rel, f"This path is longer than {MAX_PATH_CHARS} characters; shorten it."))
            continue
        data = _read(entry.path)
        if data is None:
            report.errors.append(Problem(rel, "This file is larger than 1 MB; split it or leave it out."))
            continue
        if is_descriptor:
            raw_descriptors[rel] = data
            tree.descriptors_in[_parent(rel)].append(rel)
        else:
            raw_docs[_component_folder(parts)].append((rel, data))
    unchanged_folders = set()
    locations: list[Location] = []
    for rel, data in raw_descriptors.items():
        folder = _parent(rel)
        digest = hashlib.sha256(data)
        for doc_rel, doc_data in raw_docs.get(folder, []):
            digest.update(b"\0" + doc_rel.encode() + b"\0" + doc_data)
        tree.digests[rel] = digest.hexdigest()
        # A file with Locations is always read: the files its targets lead to are only found through it.
        if known.get(rel) == tree.digests[rel] and b"Location" not in data:
            tree.skipped.add(rel)
            unchanged_folders.add(folder)
            continue
        text = _decode(rel, data, report)
        if text is not None:
            tree.entities.extend(_descriptors_parse(rel, text, report, tree.digests[rel], locations, tree.foreign))
    if locations:
        _locations_follow(root, locations, set(raw_descriptors), tree, report)
    for folder, files in raw_docs.items():
        if folder in unchanged_folders and all(r in tree.skipped for r in tree.descriptors_in[folder]):
            continue
        for rel, data in files:
            text = _decode(rel, data, report)
            if text is not None:
                tree.docs[folder].append((rel, text))
    return tree


# --- Location entities -----------------------------------------------------------------------------------------


class _Refused(Exception):
    """A Location target that is not followed; the message says why."""


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _locations_follow(root: Path, queue: list[Location], read: set[str], tree: Tree, report: Report) -> None:
    """Read what Location documents point at: files inside `root` (relative to the Location's own file), or remote
    files from CATALOG_LOCATION_ALLOWED_HOSTS. Each target's problem is reported on that target; a file is read
    once however many Locations name it, so a cycle ends, and is reported on the target that closes it."""
    edges: dict[str, list[tuple[str, Location, str]]] = defaultdict(list)
    while queue:
        location = queue.pop(0)
        for field_name, target in location.targets:
            try:
                key = _location_target(location.file, target)
                if key not in read:
                    read.add(key)
                    data = _target_read(key, root)
                    text = _decode(key, data, report)
                    if text is not None:
                        tree.entities.extend(_descriptors_parse(key, text, report, "", queue, tree.foreign))
            except _Missing as missing:
                if location.optional:
                    report.warnings.append(
                        Problem(
                            location.file, f"{missing} (optional, so skipped)", location.index, location.ref, field_name
                        )
                    )
                else:
                    report.errors.append(Problem(location.file, str(missing), location.index, location.ref, field_name))
                continue
            except _Refused as refused:
                report.errors.append(Problem(location.file, str(refused), location.index, location.ref, field_name))
                continue
            edges[location.file].append((key, location, field_name))
    _location_cycles(edges, report)


class _Missing(_Refused):
    """A target that does not exist (only a warning when the Location says presence: optional)."""


def _location_target(base: str, target: str) -> str:
    """The relative path inside `root`, or the URL, that `target` names from the file `base`."""
    if any(char in target for char in "*?["):
        raise _Refused(f"{target!r}: patterns are not followed; list each file.")
    if _URL.match(base):
        return _url_check(urllib.parse.urljoin(base, target))
    if _URL.match(target):
        return _url_check(target)
    if target.startswith("/") or PurePosixPath(target).is_absolute():
        raise _Refused(f"{target!r}: a target must be relative to the Location's file (or an https URL).")
    rel = posixpath.normpath(posixpath.join(_parent(base), target))
    if rel == ".." or rel.startswith("../"):
        raise _Refused(f"{target!r} leads outside the imported folder; it is not followed.")
    if len(rel) > MAX_PATH_CHARS:
        raise _Refused(f"{target!r}: the path is longer than {MAX_PATH_CHARS} characters.")
    return rel


def _url_check(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    allowed = [h.lower() for h in getattr(settings, "CATALOG_LOCATION_ALLOWED_HOSTS", [])]
    if parts.scheme not in ("http", "https") or not host:
        raise _Refused(f"{url!r}: only https URLs (and files inside the imported folder) are followed.")
    if host not in allowed:
        raise _Refused(
            f"{url!r}: remote targets are followed only from the hosts in CATALOG_LOCATION_ALLOWED_HOSTS, and "
            f"{host} is not one; import that catalog on its own, or ask an administrator to allow the host."
        )
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise _Refused(f"{url!r}: use https; plain http is followed only to this machine.")
    if parts.username or parts.password:
        raise _Refused(f"{url!r}: credentials in URLs are not used; the host must serve the file without them.")
    if len(url) > MAX_PATH_CHARS:
        raise _Refused(f"{url[:100]!r}…: the URL is longer than {MAX_PATH_CHARS} characters.")
    return url


def _target_read(key: str, root: Path) -> bytes:
    if _URL.match(key):
        return _url_read(key)
    path = root / key
    if not _inside(root, path):  # through a link
        raise _Refused(f"{key!r} is a link that leads outside the imported folder; it is not followed.")
    if not path.exists():
        raise _Missing(f"{key!r} does not exist in the imported folder.")
    if not path.is_file():
        raise _Refused(f"{key!r} is a folder; name the descriptor file inside it.")
    data = _read(str(path))
    if data is None:
        raise _Refused(f"{key!r} is larger than 1 MB; split it.")
    return data


def _url_read(url: str) -> bytes:
    """GET a remote descriptor: no redirects (they could leave the allowed hosts), a timeout, at most 1 MB."""
    try:
        with httpx.Client(timeout=10.0, follow_redirects=False) as client, client.stream("GET", url) as response:
            if response.status_code == 404:
                raise _Missing(f"{url!r} answered 404 Not Found.")
            if response.status_code != 200:
                raise _Refused(f"{url!r} answered {response.status_code}; only a 200 with the file is read.")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise _Refused(f"{url!r} is larger than 1 MB; split it.")
                chunks.append(chunk)
    except httpx.HTTPError as error:
        raise _Refused(f"{url!r} could not be fetched ({error.__class__.__name__}: {error}).") from error
    return b"".join(chunks)


def _location_cycles(edges: dict[str, list[tuple[str, Location, str]]], report: Report) -> None:
    """Report each target that leads back to a file on the current path of Locations (depth first, no recursion)."""
    done: set[str] = set()
    for start in list(edges):
        if start in done:
            continue
        path = [start]
        on_path = {start}
        stack = [iter(edges.get(start, []))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            target, location, field_name = step
            if target in on_path:
                chain = " → ".join([*path[path.index(target) :], target])
                report.errors.append(
                    Problem(
                        location.file,
                        f"This target closes a cycle of Locations ({chain}); each file is read once, so remove one "
                        "of these references.",
                        location.index,
                        location.ref,
                        field_name,
                    )
                )
            elif target not in done:
                path.append(target)
                on_path.add(target)
                stack.append(iter(edges.get(target, [])))


def _read(path: str) -> bytes | None:
    """A file's bytes, or None when it is over MAX_FILE_BYTES (then it is not read): open, fstat, read, close,
    about half the system calls of stat() then read_bytes(), for the 40,000 files of 10,000 components."""
    fd = os.open(path, os.O_RDONLY)  # not inherited by child processes (PEP 446)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_FILE_BYTES:
            return None
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 16 if chunks else size + 1):  # to its end, should it have grown since
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _decode(rel: str, data: bytes, report: Report) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        report.errors.append(Problem(rel, "This file is not UTF-8 text."))
        return None
    if "\x00" in text:  # PostgreSQL text cannot hold it
        report.errors.append(Problem(rel, "This file contains a NUL character (byte 0); remove it."))
        return None
    return text


def _descriptors_parse(
    rel: str,
    text: str,
    report: Report,
    digest: str = "",
    locations: list[Location] | None = None,
    foreign: dict[str, list[ForeignDocument]] | None = None,
) -> list[Entity]:
    """The entities of one descriptor file; its Location documents go to `locations`, other apps' to `foreign`."""
    entities = []
    # YAML aliases let a small file stand for an enormous document (the "billion laughs"); descriptors never
    # need them. Anchors are rare, so the extra scan only runs when a file has one.
    try:
        if "&" in text and any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=_Loader)):
            report.errors.append(
                Problem(rel, "YAML aliases (*name) are not allowed in descriptors; write the values out.")
            )
            return []
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        report.errors.append(Problem(rel, f"This is not valid YAML{where}: {problem}."))
        return []
    for index, document in enumerate(documents):
        if document is None:
            continue
        api_version = document.get("apiVersion") if isinstance(document, dict) else None
        if foreign is not None and isinstance(api_version, str) and api_version in _FOREIGN_HANDLERS:
            foreign[api_version].append(ForeignDocument(rel, index, document))
            continue
        if isinstance(document, dict) and document.get("kind") == "Location" and locations is not None:
            try:
                locations.append(descriptors.location_parse(document, path=rel, index=index))
            except DescriptorError as error:
                metadata = document.get("metadata")
                name = metadata.get("name") if isinstance(metadata, dict) else None
                ref = f"location:{name}" if isinstance(name, str) else None
                report.errors.append(Problem(rel, str(error), index, ref, error.field))
            continue
        try:
            entity = descriptors.document_parse(document, path=rel, index=index)
        except DescriptorError as error:
            metadata = document.get("metadata") if isinstance(document, dict) else None
            name = metadata.get("name") if isinstance(metadata, dict) else None
            namespace = (metadata.get("namespace") if isinstance(metadata, dict) else None) or "default"
            kind = document.get("kind") if isinstance(document, dict) else None
            ref = str(Ref(str(kind).lower(), str(namespace), str(name))) if kind and name else None
            report.errors.append(Problem(rel, str(error), index, ref, error.field))
            continue
        dumped = json.dumps(document, sort_keys=True, default=str)
        if "\\u0000" in dumped:  # a "\0" escape: PostgreSQL text and jsonb cannot hold it
            where = validators.nul_path(document)
            report.errors.append(
                Problem(
                    rel, "contains a NUL character (\\0), which Runway cannot store.", index, str(entity.ref), where
                )
            )
            continue
        entity.content_hash = hashlib.sha256(dumped.encode()).hexdigest()  # = descriptors.content_hash(document, [])
        entities.append(entity)
    return entities


def archive_extract(data: bytes, filename: str, destination: Path, report: Report) -> None:
    """Unpack an upload, or raise ValueError saying what to upload instead; see `_archive_extract`."""
    try:
        _archive_extract(data, filename, destination, report)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        raise ValueError(
            f"Upload a .zip, .tar or .tar.gz archive of your catalog folder; this one could not be read ({error})."
        ) from error


class ArchiveTooLarge(ValueError):
    """An upload that unpacks to more bytes or files than the settings allow; nothing of it is imported."""


# Defaults of the settings CATALOG_ARCHIVE_MAX_UNPACKED_BYTES and CATALOG_ARCHIVE_MAX_FILES: a 10,000-component
# catalog with its docs unpacks to about 60 MB in 50,000 files.
DEFAULT_MAX_UNPACKED_BYTES = 250_000_000
DEFAULT_MAX_FILES = 100_000


def _archive_limits() -> tuple[int, int]:
    return (
        int(getattr(settings, "CATALOG_ARCHIVE_MAX_UNPACKED_BYTES", DEFAULT_MAX_UNPACKED_BYTES)),
        int(getattr(settings, "CATALOG_ARCHIVE_MAX_FILES", DEFAULT_MAX_FILES)),
    )


class _Budget:
    """Counts what an archive unpacks to, as it streams, and stops it at the limits."""

    def __init__(self) -> None:
        self.max_bytes, self.max_files = _archive_limits()
        self.bytes = self.files = 0

    def member(self, count: int = 1) -> None:
        self.files += count
        if self.files > self.max_files:
            raise ArchiveTooLarge(
                f"The archive holds more than {self.max_files:,} files (CATALOG_ARCHIVE_MAX_FILES). "
                "Nothing was imported: upload only the catalog's descriptors and docs, or split it by source."
            )

    def spend(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.max_bytes:
            raise ArchiveTooLarge(
                f"The archive unpacks to more than {self.max_bytes // 1_000_000:,} MB "
                "(CATALOG_ARCHIVE_MAX_UNPACKED_BYTES). Nothing was imported: upload only the catalog's descriptors "
                "and docs, or split it by source."
            )


def _copy(source: Any, path: Path, budget: _Budget) -> bool:
    """Stream one member to `path`, counting its bytes; False (and no file) if it is over MAX_FILE_BYTES after all."""
    written = 0
    with open(path, "wb") as out:
        while chunk := source.read(1 << 16):
            written += len(chunk)
            budget.spend(len(chunk))
            if written > MAX_FILE_BYTES:
                break
            out.write(chunk)
    if written > MAX_FILE_BYTES:
        path.unlink()
        return False
    return True


def _zip_entries(data: bytes) -> int | None:
    """The entry count a zip's end record declares, read before zipfile builds an object per entry."""
    try:
        end = zipfile._EndRecData(io.BytesIO(data))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None
    return int(end[zipfile._ECD_ENTRIES_TOTAL]) if end else None  # type: ignore[attr-defined]


def _archive_extract(data: bytes, filename: str, destination: Path, report: Report) -> None:
    """Unpack a .zip or .tar(.gz) upload; members with absolute paths, `..` or links are refused one by one.

    What it unpacks to is counted as it streams (every member's bytes, even those skipped, since a compressed tar
    must be decompressed to pass them) and stopped with ArchiveTooLarge at the settings' limits; the caller's
    temporary folder then goes, with whatever was written."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ValueError("The archive is larger than 200 MB.")
    destination = destination.resolve()
    budget = _Budget()

    def target(name: str) -> Path | None:
        member = PurePosixPath(name.replace("\\", "/"))
        if member.is_absolute() or ".." in member.parts or not _inside(destination, destination / member):
            report.errors.append(Problem(name, "This archive entry points outside the archive's folder; skipped."))
            return None
        return destination / member

    def too_big(name: str) -> None:
        report.errors.append(Problem(name, "This file is larger than 1 MB; skipped."))

    if zipfile.is_zipfile(io.BytesIO(data)):  # by content: a .zip name on other bytes gets the ValueError below
        budget.member(_zip_entries(data) or 0)  # before zipfile reads the whole central directory
        budget.files = 0
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                budget.member()
                path = target(info.filename)
                if path is None or info.is_dir():
                    continue
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    report.errors.append(Problem(info.filename, "Links inside archives are not followed; skipped."))
                    continue
                if info.file_size > MAX_FILE_BYTES:
                    budget.spend(info.file_size)
                    too_big(info.filename)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source:
                    if not _copy(source, path, budget):
                        too_big(info.filename)
        return
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data))
    except tarfile.TarError as error:
        raise ValueError("Upload a .zip, .tar or .tar.gz archive of your catalog folder.") from error
    with archive:
        for member in archive:  # one header at a time: getmembers() would read (and decompress) all of it first
            budget.member()
            path = target(member.name)
            if path is None or member.isdir():
                continue
            if not member.isfile():
                report.errors.append(Problem(member.name, "Only regular files are read from archives; skipped."))
                continue
            if member.size > MAX_FILE_BYTES:
                budget.spend(member.size)
                too_big(member.name)
                continue
            extracted = archive.extractfile(member)
            if extracted is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                if not _copy(extracted, path, budget):
                    too_big(member.name)
            archive.members.clear()  # tarfile keeps every header it read; nothing here looks back


# --- resolving references -----------------------------------------------------------------------------------------


_KIND_MODELS: dict[str, type] = {"component": Service, "resource": Resource, "api": Api, "system": System}
_KIND_NAMES = {"component": "Component", "resource": "Resource", "api": "API", "system": "System"}


def _target_key(row: UnresolvedRelation) -> tuple[str, str, str]:
    return (row.target_kind, row.target_namespace, row.target_name)


# The relations each kind may keep unresolved.
SOFT_KEYS = {
    "Component": frozenset(descriptors.SOFT_RELATIONS),
    "API": frozenset({"system"}),
    "Resource": frozenset({"system"}),
}


class _Resolver:
    """Decides which parsed entities are valid, given what exists already and what else is being imported.

    Valid means every reference resolves and nothing about the entity breaks a database constraint (team names,
    Runway's global names across namespaces): an entity that would is refused on its own, never the whole import.
    """

    def __init__(
        self,
        entities: list[Entity],
        report: Report,
        *,
        records: list[EntitySource],
        source_pk: int | None = None,
        skipped: frozenset[str] = frozenset(),
    ) -> None:
        self.report = report
        self.records, self.source_pk, self.skipped = records, source_pk, skipped
        self.refused = {problem.entity for problem in report.errors if problem.entity}  # documents that failed to parse
        self.by_ref: dict[Ref, Entity] = {}
        for entity in entities:
            if entity.ref in self.by_ref:
                first = self.by_ref[entity.ref]
                self._fail(entity, f"{entity.ref} is also defined in {first.path} (document {first.index}).", None)
                continue
            self.by_ref[entity.ref] = entity
        teams = list(Team.objects.values_list("slug", "name", "parent__slug"))
        self.team_names = {slug: name for slug, name, _ in teams}
        self.team_parents = {slug: parent for slug, _, parent in teams if parent}
        self.existing = {
            "group": set(self.team_names),
            "system": set(System.objects.values_list("slug", flat=True)),
            "component": set(Service.objects.values_list("slug", flat=True)),
            "api": set(Api.objects.values_list("slug", flat=True)),
            "resource": set(Resource.objects.values_list("slug", flat=True)),
            "user": set(get_user_model().objects.values_list("username", flat=True)),
        }
        self.valid: dict[Ref, Entity] = {}

    def _fail(self, entity: Entity, message: str, field_name: str | None) -> None:
        self.report.errors.append(Problem(entity.path, message, entity.index, str(entity.ref), field_name))

    def _known(self, ref: Ref) -> bool:
        if ref in self.by_ref:
            return ref in self.valid
        return ref.namespace == "default" and ref.name in self.existing.get(ref.kind, set())

    def resolve(self) -> dict[Ref, Entity]:
        order = ["group", "user", "system", "resource", "api", "component"]
        pending = [e for e in self.by_ref.values()]
        pending.sort(key=lambda e: order.index(e.ref.kind))
        # Entities may refer to others of their own kind (parent groups, component dependencies): assume every
        # candidate valid, then drop the ones with a bad reference until nothing changes.
        self.valid = {entity.ref: entity for entity in pending}
        self._drop_broken_references()
        # Refusing an entity for a clash can break references to it, so references are checked once more.
        if self._drop_clashes():
            self._drop_broken_references()
        for entity in self.valid.values():
            self._set_aside_unresolved(entity)
        return self.valid

    def _set_aside_unresolved(self, entity: Entity) -> None:
        """Move the relations whose target is neither valid here nor in the catalog to `entity.unresolved`: the
        entity imports without them, and they are made once the target arrives."""
        for key in descriptors.SOFT_RELATIONS:
            refs = entity.refs.get(key)
            if not refs:
                continue
            kept = []
            for target in refs:
                if (
                    target in self.valid
                    or target == entity.ref
                    or (target.namespace == "default" and target.name in self.existing.get(target.kind, ()))
                ):
                    kept.append(target)
                else:
                    entity.unresolved.append((key, target))
            entity.refs[key] = kept

    def _drop_broken_references(self) -> None:
        reasons: dict[Ref, tuple[str, str]] = {}
        changed = True
        while changed:
            changed = False
            for ref, entity in list(self.valid.items()):
                for key, refs in entity.refs.items():
                    if key in SOFT_KEYS.get(entity.kind, ()):
                        continue  # a missing target leaves the relation unresolved, see _set_aside_unresolved
                    for target in refs:
                        if key in ("members", "memberOf"):
                            continue  # people and teams list each other; an unknown one is reported, not fatal
                        if not self._known(target):
                            broken = target in self.by_ref or str(target) in self.refused
                            why = (
                                f"{target} has errors of its own, so {entity.ref} cannot refer to it."
                                if broken
                                else f"{target} does not exist in the catalog or in this import."
                            )
                            reasons[ref] = (why, f"spec.{key}")
                            del self.valid[ref]
                            changed = True
                            break
                    if ref not in self.valid:
                        break
        for ref, (why, field_name) in reasons.items():
            self._fail(self.by_ref[ref], why, field_name)

    def _drop_clashes(self) -> bool:
        """Refuse the entities that would break a unique constraint; True if any was refused. Checked here, in
        bulk, against the database and the rest of the batch, since one IntegrityError would abort the import."""
        clashes: dict[Ref, tuple[str, str]] = {}
        # Runway's names are global (a service's slug is its name), so one name in two namespaces is one row.
        claimed: dict[tuple[str, str], Ref] = {}
        for ref in self.valid:
            first = claimed.setdefault((ref.kind, ref.name), ref)
            if first != ref:
                clashes[ref] = (
                    f"{first} in this import already has the name {ref.name!r}: names are unique across "
                    "namespaces in Runway, so rename one of them.",
                    "metadata.namespace",
                )
        if any(r.namespace != "default" for r in self.valid) or any(r.namespace != "default" for r in self.records):
            for record in self.records:
                kind = record.kind.lower()
                ref = claimed.get((kind, record.name))
                if ref is None or ref in clashes or ref.namespace == record.namespace:
                    continue
                # The same source may move an entity to another namespace; the old record then goes missing.
                if record.source_id == self.source_pk and record.path not in self.skipped:
                    continue
                clashes[ref] = (
                    f"Names are unique across namespaces in Runway, and {record} already has the name "
                    f"{ref.name!r} (source {record.source.name!r}, {record.path}).",  # one query, for a rare clash
                    "metadata.namespace",
                )
        # Team names are unique. Existing names are held until the end of the write (rows are inserted before the
        # renamed ones are updated), so a name a team has now is taken, even if this import renames that team.
        holders = {name: slug for slug, name in self.team_names.items()}
        for ref, entity in self.valid.items():
            if ref.kind != "group" or ref in clashes:
                continue
            name = entity.fields["name"]
            holder = holders.setdefault(name, ref.name)
            if holder != ref.name:
                other = Ref("group", "default", holder)
                who = (
                    f"{self.by_ref[other].ref} in this import"
                    if other in self.valid
                    else f"the team {holder!r} ({self.team_names.get(holder, holder)})"
                )
                clashes[ref] = (
                    f"{who} already has the name {name!r}; team names are unique, so choose another.",
                    entity.fields.get("name_field", "spec.profile.displayName"),
                )
        # Teams nest, but never under themselves (the team form refuses it too): follow each imported group's new
        # parent chain, through teams this import leaves alone, and refuse the groups on a loop.
        parents = dict(self.team_parents)
        groups = [ref for ref in self.valid if ref.kind == "group" and ref not in clashes]
        for ref in groups:
            parent_refs = self.valid[ref].refs.get("parent") or []
            parents[ref.name] = parent_refs[0].name if parent_refs else None
        for ref in groups:
            chain, slug = [ref.name], parents.get(ref.name)
            while slug is not None and slug not in chain:
                chain.append(slug)
                slug = parents.get(slug)
            if slug == ref.name:
                loop = " → ".join(f"group:{name}" for name in [*chain, ref.name])
                clashes[ref] = (f"{loop}: a team cannot be nested under itself or one of its sub-teams.", "spec.parent")
        for ref, (why, field_name) in clashes.items():
            del self.valid[ref]
            self._fail(self.by_ref[ref], why, field_name)
        return bool(clashes)


# --- writing ------------------------------------------------------------------------------------------------------


def _touched(objects: list[Any], now: Any) -> list[Any]:
    """bulk_update skips auto_now, so the rows it rewrites get their updated_at here."""
    for obj in objects:
        obj.updated_at = now
    return objects


@dataclass
class _Plan:
    """What to write for one kind: entities to create and to update (unchanged ones are left alone)."""

    create: list[Entity] = field(default_factory=list)
    update: list[tuple[Entity, EntitySource]] = field(default_factory=list)


def _docs_check(owner: Entity, report: Report) -> None:
    """Report unreadable runbooks and ADRs at every import, not only when their component is written again; what
    was read is kept on the entity for techdocs.sync to write."""
    runbooks: dict[str, str] = {}  # slug → file, per component: runbooks are unique by slug, ADRs by number
    adrs: dict[int, str] = {}
    for rel, text in owner.docs:
        try:
            parsed = doc_files.doc_parse(path=rel, text=text)
            if isinstance(parsed, doc_files.ParsedADR):
                if (first := adrs.setdefault(parsed.number, rel)) != rel:
                    raise ValueError(f"ADR {parsed.number} is also {first}; give each ADR its own number.")
            else:
                if len(parsed.slug) > _RUNBOOK_SLUG_CHARS:
                    raise ValueError(f"A runbook's name is at most {_RUNBOOK_SLUG_CHARS} characters; shorten it.")
                if (first := runbooks.setdefault(parsed.slug, rel)) != rel:
                    raise ValueError(f"The runbook {parsed.slug!r} is also {first}; rename one of them.")
            owner.parsed_docs[rel] = parsed
        except ValueError as error:  # FileError included
            owner.parsed_docs[rel] = None
            report.errors.append(Problem(rel, str(error), None, str(owner.ref), None))


_RUNBOOK_SLUG_CHARS = Runbook._meta.get_field("slug").max_length or 100

_gc_lock = threading.Lock()
_gc_depth = 0
_gc_thresholds = gc.get_threshold()


@contextlib.contextmanager
def _full_collections_deferred() -> Iterator[None]:
    """No full garbage collection while an import runs; young ones (which free short-lived cycles) go on.

    An import builds a few hundred thousand objects that all live until it ends, and each full collection walks
    every one of them again: with 10,000 components that is a tenth of the import's time. Nested and concurrent
    imports (threads) share one deferral; the thresholds come back when the last one ends.
    """
    global _gc_depth, _gc_thresholds
    with _gc_lock:
        if _gc_depth == 0:
            _gc_thresholds = gc.get_threshold()
            gc.set_threshold(_gc_thresholds[0], _gc_thresholds[1], 1_000_000)
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0:
                gc.set_threshold(*_gc_thresholds)


def catalog_import(*, root: Path, source_name: str, actor: User | None = None, location: str = "") -> Report:
    """Import the tree at `root` as `source_name`; returns the per-entity report. All valid entities or none."""
    with _full_collections_deferred():
        return _catalog_import(root=root, source_name=source_name, actor=actor, location=location)


def _catalog_import(*, root: Path, source_name: str, actor: User | None, location: str) -> Report:
    report = Report(source=source_name)
    source_pk, previous = CatalogSource.objects.filter(name=source_name).values_list("pk", "file_digests").first() or (
        None,
        {},
    )
    tree = tree_read(Path(root), report, known=previous or {})
    components_by_folder: dict[str, list[Entity]] = defaultdict(list)
    for entity in tree.entities:
        if entity.kind == "Component":
            components_by_folder[_parent(entity.path)].append(entity)
    for folder, files in tree.docs.items():
        owners = components_by_folder.get(folder, [])
        if not owners and any(rel in tree.skipped for rel in tree.descriptors_in.get(folder, [])):
            # Another file of the folder (an SLO file) was read again, but the component's own descriptor was
            # skipped as unchanged, and its digest covers these docs: they are unchanged too.
            continue
        if not owners:
            for rel, _text in files:
                report.errors.append(
                    Problem(
                        rel,
                        "No Component is described in this folder's catalog-info.yaml, "
                        "so these docs belong to nothing.",
                    )
                )
            continue
        owner = next((e for e in owners if e.name == PurePosixPath(folder).name), owners[0])
        owner.docs = files
        owner.content_hash = descriptors.content_hash({"descriptor": owner.content_hash}, files)
        _docs_check(owner, report)
    # Read once for the resolver (names across namespaces) and the writer (which entity is whose).
    records = list(EntitySource.objects.all())
    valid = _Resolver(
        tree.entities, report, records=records, source_pk=source_pk, skipped=frozenset(tree.skipped)
    ).resolve()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Search vectors are filled in after commit by a worker (portal.search_index), not row by row here.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL runway.defer_search_index = 'on'")
            portal_tasks.search_index.delay_on_commit()
        source, _ = CatalogSource.objects.get_or_create(name=source_name, defaults={"location": location})
        writer = _Writer(source=source, report=report, actor=actor, skipped=tree.skipped, records=records)
        writer.write(list(valid.values()))
        for api_version, handler in _FOREIGN_HANDLERS.items():
            handler(
                documents=tree.foreign.get(api_version, []),
                source=source,
                report=report,
                actor=actor,
                skipped=tree.skipped,
            )
        # Every service the writer touched has its updated_at at or after the writer's clock (bulk writes save no
        # model, so the documents are rebuilt here, in the import's transaction).
        catalog_documents.refresh(Service.objects.filter(updated_at__gte=writer.now).values_list("pk", flat=True))
        source.location = location or source.location
        source.last_synced_at = timezone.now()
        source.last_report = report.as_dict()
        source.file_digests = _clean_digests(tree, report)
        source.save()
        catalog_cache.bump()  # bulk writes send no model signals
    _statistics_refresh(report)
    log.info(
        "catalog_import",
        source=source_name,
        created=dict(report.created),
        updated=dict(report.updated),
        unchanged=report.unchanged,
        errors=len(report.errors),
        missing=len(report.missing),
    )
    return report


# An import that adds this many services (or a tenth of the catalog) refreshes the table's statistics at once.
ANALYZE_AFTER = 1000


def _statistics_refresh(report: Report) -> None:
    """ANALYZE the services table after an import that grew it much (PostgreSQL). The list's counts past the exact
    limit are the planner's estimates, which autovacuum would bring up to date only a minute or more later: right
    after importing 5,000 services into an empty catalog, the list said "about 1,004". A sample of the table; well
    under a second at 100,000 services, against more than a minute for such an import."""
    added = report.created.get("Component", 0)
    if connection.vendor != "postgresql" or not added:
        return
    with connection.cursor() as cursor:
        if added < ANALYZE_AFTER:  # the table's size as last analyzed (-1: never), without counting it
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'catalog_service'::regclass")
            (known,) = cursor.fetchone()
            if 0 <= added * 10 < known:
                return
        cursor.execute("ANALYZE catalog_service")


def _clean_digests(tree: Tree, report: Report) -> dict[str, str]:
    """Digests of the descriptor files none of whose entities or docs had a problem this time."""
    troubled: set[str] = set()
    for problem in report.errors:
        if problem.file in tree.digests:
            troubled.add(problem.file)
        else:
            parts = PurePosixPath(problem.file).parts
            if "docs" in parts[:-1]:
                troubled.update(tree.descriptors_in.get(_component_folder(parts), []))
    return {rel: digest for rel, digest in tree.digests.items() if rel not in troubled}


def catalog_import_archive(*, data: bytes, filename: str, source_name: str, actor: User | None = None) -> Report:
    """Import an uploaded archive: it is unpacked into a private temporary folder first, then read like a tree."""
    with tempfile.TemporaryDirectory(prefix="runway-import-") as folder:
        unpack_report = Report(source=source_name)
        archive_extract(data, filename, Path(folder), unpack_report)
        report = catalog_import(root=Path(folder), source_name=source_name, actor=actor, location=filename)
    report.errors[:0] = unpack_report.errors
    return report


class _Writer:
    """Bulk writes for one import, inside the caller's transaction."""

    def __init__(
        self,
        *,
        source: CatalogSource,
        report: Report,
        actor: User | None,
        skipped: set[str],
        records: list[EntitySource],
    ) -> None:
        self.source, self.report, self.actor, self.skipped = source, report, actor, skipped
        self.now = timezone.now()
        self.events: list[AuditEvent] = []
        context = structlog.contextvars.get_contextvars()
        self.request_id = str(context.get("request_id") or context.get("task_id") or "")[:64]
        self.sources: dict[tuple[str, str, str], EntitySource] = {(s.kind, s.namespace, s.name): s for s in records}
        self.seen: set[int] = set()
        for record in self.sources.values():  # entities of files not even parsed, since nothing changed
            if record.source_id == source.pk and record.path in skipped and record.missing_since is None:
                self.seen.add(record.pk)
                report.unchanged += 1
        self.content_types = {
            model: ContentType.objects.get_for_model(model) for model in (Team, User, System, Resource, Api, Service)
        }

    # planning ---------------------------------------------------------------------------------------------------

    def _plan(self, entities: list[Entity], kind: str) -> _Plan:
        plan = _Plan()
        for entity in entities:
            if entity.kind != kind:
                continue
            record = self.sources.get((entity.kind, entity.namespace, entity.name))
            if record is None:
                plan.create.append(entity)
                continue
            if record.source_id != self.source.pk:
                self.report.errors.append(
                    Problem(
                        entity.path,
                        f"{entity.ref} is already defined by source {record.source.name!r} "
                        f"({record.path}); remove it there first.",
                        entity.index,
                        str(entity.ref),
                    )
                )
                continue
            self.seen.add(record.pk)
            if record.content_hash == entity.content_hash and record.missing_since is None:
                self.report.unchanged += 1
                continue
            plan.update.append((entity, record))
        return plan

    def _record(self, entity: Entity, obj: Any, model: type, created: bool) -> None:
        key = (entity.kind, entity.namespace, entity.name)
        record = self.sources.get(key)
        fields = {
            "source": self.source,
            "path": entity.path,
            "document_index": entity.index,
            "content_hash": entity.content_hash,
            "content_type": self.content_types[model],
            "object_id": obj.pk,
            "synced_at": self.now,
            "missing_since": None,
        }
        if record is None:
            record = EntitySource(kind=entity.kind, namespace=entity.namespace, name=entity.name, **fields)
            self.sources[key] = record
        else:
            for name, value in fields.items():
                setattr(record, name, value)
        self._pending_records.append(record)
        self._written.append((record, entity))
        (self.report.created if created else self.report.updated)[entity.kind] += 1
        self.events.append(
            AuditEvent(
                actor=self.actor,
                actor_repr=self.actor.get_username() if self.actor else "system",
                action=f"{entity.kind.lower()}.imported",
                object_type=model._meta.label_lower,
                object_id=str(obj.pk),
                object_repr=str(obj)[:200],
                service_id=obj.pk if model is Service else None,
                after={"change": "created" if created else "updated", "source": self.source.name, "path": entity.path},
                request_id=self.request_id,
            )
        )

    def write(self, entities: list[Entity]) -> None:
        self._pending_records: list[EntitySource] = []
        self._written: list[tuple[EntitySource, Entity]] = []
        teams = self._teams(entities)
        users = self._users(entities, teams)
        systems = self._systems(entities, teams)
        resources = self._simple(entities, "Resource", Resource, teams, systems)
        apis = self._simple(entities, "API", Api, teams, systems)
        self._services(entities, teams, systems, resources, apis)
        del users
        new_records = [r for r in self._pending_records if r.pk is None]
        old_records = [r for r in self._pending_records if r.pk is not None]
        bulk.objects_insert(EntitySource, new_records)
        EntitySource.objects.bulk_update(
            old_records,
            ["path", "document_index", "content_hash", "content_type", "object_id", "synced_at", "missing_since"],
            batch_size=2000,
        )
        self.seen.update(r.pk for r in self._pending_records)
        gone = [
            s
            for s in self.sources.values()
            if s.source_id == self.source.pk and s.pk is not None and s.pk not in self.seen and s.missing_since is None
        ]
        for record in gone:
            record.missing_since = self.now
            self.report.missing.append(str(record))
        EntitySource.objects.bulk_update(gone, ["missing_since"], batch_size=2000)
        # An entity gone from its source waits for nothing; should it come back, it is written again with its own.
        self._unresolved_store([r.pk for r in old_records] + [r.pk for r in gone])
        self._unresolved_resolve()
        bulk.objects_insert(AuditEvent, self.events)

    # unresolved relations ---------------------------------------------------------------------------------------

    def _unresolved_store(self, rewritten: list[int]) -> None:
        """A written entity's waiting relations are what its descriptor says now."""
        if rewritten:
            UnresolvedRelation.objects.filter(entity_id__in=rewritten).delete()
        rows = [
            UnresolvedRelation(
                entity=record,
                relation=key,
                target_kind=ref.kind,
                target_namespace=ref.namespace,
                target_name=ref.name,
                dependency_kind=(
                    entity.fields.get("dependency_kinds", {}).get(ref.name, "runtime")
                    if key == "dependsOn" and ref.kind == "component"
                    else ""
                ),
                created_at=self.now,
            )
            for record, entity in self._written
            for key, ref in dict.fromkeys(entity.unresolved)
        ]
        bulk.objects_insert(UnresolvedRelation, rows)

    def _unresolved_resolve(self) -> None:
        """Make every waiting relation (of any source) whose target now exists, and warn about this source's others.

        Targets in the default namespace are found by name, others by their source record; one query for the
        waiting rows, then a few per kind only when some can be resolved."""
        waiting = list(UnresolvedRelation.objects.select_related("entity"))
        if not waiting:
            return
        by_name: dict[str, set[str]] = defaultdict(set)
        elsewhere: set[tuple[str, str, str]] = set()
        for row in waiting:
            if row.target_namespace == "default":
                by_name[row.target_kind].add(row.target_name)
            else:
                elsewhere.add((_KIND_NAMES[row.target_kind], row.target_namespace, row.target_name))
        targets: dict[tuple[str, str, str], int] = {}
        for kind, names in by_name.items():
            for slug, pk in _KIND_MODELS[kind].objects.filter(slug__in=names).values_list("slug", "pk"):
                targets[(kind, "default", slug)] = pk
        if elsewhere:
            for kind, namespace, name, pk in EntitySource.objects.filter(
                kind__in={k for k, _, _ in elsewhere}, name__in={n for _, _, n in elsewhere}
            ).values_list("kind", "namespace", "name", "object_id"):
                if (kind, namespace, name) in elsewhere:
                    targets[(kind.lower(), namespace, name)] = pk
        found = [(row, targets[key]) for row in waiting if (key := _target_key(row)) in targets]
        if found:
            self._unresolved_make(found)
        done = {row.pk for row, _ in found}
        for row in waiting:
            if row.pk not in done and row.entity.source_id == self.source.pk and row.entity_id in self.seen:
                self.report.warnings.append(
                    Problem(
                        row.entity.path,
                        f"{row.target_ref} is not in the catalog yet; the relation is kept and made when it arrives.",
                        row.entity.document_index,
                        str(Ref(row.entity.kind.lower(), row.entity.namespace, row.entity.name)),
                        f"spec.{row.relation}",
                    )
                )
        self.report.warnings.sort(key=lambda p: (p.file, p.document or 0, p.field or "", p.message))

    def _unresolved_make(self, found: list[tuple[UnresolvedRelation, int]]) -> None:
        holders: dict[str, set[int]] = defaultdict(set)
        for row, _ in found:
            holders[row.entity.kind].add(row.entity.object_id)
        # Holders deleted since, and decommissioned services (read-only records), get nothing.
        alive: dict[str, dict[int, str]] = {
            kind: dict(
                _KIND_MODELS[kind.lower()]
                .objects.filter(pk__in=ids)
                .exclude(**({"lifecycle": Service.Lifecycle.DECOMMISSIONED} if kind == "Component" else {}))
                .values_list("pk", "name")
            )
            for kind, ids in holders.items()
        }
        edges, resources, provided, consumed = [], [], [], []
        systems: dict[tuple[type, int], list[int]] = defaultdict(list)
        made: dict[tuple[str, int], list[str]] = defaultdict(list)  # holder → relations made, for its audit event
        for row, target in found:
            holder = row.entity.object_id
            if holder not in alive[row.entity.kind]:
                continue
            made[(row.entity.kind, holder)].append(f"{row.relation} {row.target_ref}")
            if row.relation == "system":
                systems[(_KIND_MODELS[row.entity.kind.lower()], target)].append(holder)
            elif row.relation == "dependsOn" and row.target_kind == "component":
                if holder != target:
                    edges.append((holder, target, row.dependency_kind or "runtime", self.now))
            elif row.relation == "dependsOn":
                resources.append((holder, target))
            elif row.relation == "providesApis":
                provided.append((holder, target))
            else:
                consumed.append((holder, target))
        bulk.rows_insert(Dependency, ["source_id", "target_id", "kind", "created_at"], edges, ignore_conflicts=True)
        bulk.rows_insert(Service.resources.through, ["service_id", "resource_id"], resources, ignore_conflicts=True)
        bulk.rows_insert(Api.providers.through, ["service_id", "api_id"], provided, ignore_conflicts=True)
        bulk.rows_insert(Api.consumers.through, ["service_id", "api_id"], consumed, ignore_conflicts=True)
        for (model, system_id), ids in systems.items():
            model.objects.filter(pk__in=ids).update(system_id=system_id, updated_at=self.now)
        UnresolvedRelation.objects.filter(pk__in=[row.pk for row, _ in found]).delete()
        for (kind, holder), relations in made.items():
            model = _KIND_MODELS[kind.lower()]
            self.events.append(
                AuditEvent(
                    actor=self.actor,
                    actor_repr=self.actor.get_username() if self.actor else "system",
                    action=f"{kind.lower()}.relations_resolved",
                    object_type=model._meta.label_lower,
                    object_id=str(holder),
                    object_repr=alive[kind][holder][:200],
                    service_id=holder if model is Service else None,
                    after={"relations": sorted(relations), "source": self.source.name},
                    request_id=self.request_id,
                )
            )

    # kinds ------------------------------------------------------------------------------------------------------

    def _teams(self, entities: list[Entity]) -> dict[str, Team]:
        plan = self._plan(entities, "Group")
        teams = {team.slug: team for team in Team.objects.all()}
        new_groups = [Group(name=f"team:{e.name}") for e in plan.create if e.name not in teams]
        existing_groups = {g.name: g for g in Group.objects.filter(name__in=[g.name for g in new_groups])}
        Group.objects.bulk_create([g for g in new_groups if g.name not in existing_groups], batch_size=2000)
        groups = {g.name: g for g in Group.objects.filter(name__in=[g.name for g in new_groups])}
        attrs = ["name", "description", "chat_channel", "on_call_url"]
        created, changed = [], []
        for entity in plan.create:
            team = teams.get(entity.name)
            values = {a: entity.fields[a] for a in attrs}
            if team is None:  # adopting a team made in the UI keeps its group and permissions
                team = Team(slug=entity.name, group=groups[f"team:{entity.name}"], **values)
                created.append((entity, team))
            else:
                for name, value in values.items():
                    setattr(team, name, value)
                changed.append((entity, team))
        for entity, record in plan.update:
            team = teams[entity.name] if entity.name in teams else Team.objects.get(pk=record.object_id)
            for name in attrs:
                setattr(team, name, entity.fields[name])
            changed.append((entity, team))
        Team.objects.bulk_create([t for _, t in created], batch_size=2000)
        for _, team in created:
            teams[team.slug] = team
        for entity, team in [*created, *changed]:
            parents = entity.refs.get("parent") or []
            team.parent = teams[parents[0].name] if parents else None
        _touched([t for _, t in changed], self.now)
        Team.objects.bulk_update(
            [t for _, t in [*created, *changed]], [*attrs, "parent", "updated_at"], batch_size=2000
        )
        for entity, team in created:
            self._record(entity, team, Team, True)
        for entity, team in changed:
            self._record(entity, team, Team, False)
        self._touched_groups = {e.name: e for e, _ in [*created, *changed]}
        return teams

    def _users(self, entities: list[Entity], teams: dict[str, Team]) -> dict[str, User]:
        plan = self._plan(entities, "User")
        user_model = get_user_model()
        users = {
            u.username: u
            for u in user_model.objects.filter(username__in=[e.name for e in entities if e.kind == "User"])
        }
        created, changed = [], []
        for entity in [*plan.create, *(e for e, _ in plan.update)]:
            user = users.get(entity.name)
            values = {k: entity.fields[k] for k in ("first_name", "last_name", "email")}
            if user is None:
                user = user_model(username=entity.name, **values)
                user.set_unusable_password()
                created.append((entity, user))
            else:
                for name, value in values.items():
                    setattr(user, name, value)
                changed.append((entity, user))
        user_model.objects.bulk_create([u for _, u in created], batch_size=2000)
        user_model.objects.bulk_update([u for _, u in changed], ["first_name", "last_name", "email"], batch_size=2000)
        for entity, user in created:
            users[user.username] = user
            self._record(entity, user, User, True)
        for entity, user in changed:
            self._record(entity, user, User, False)
        self._memberships(entities, teams, plan, created, changed)
        return users

    def _memberships(self, entities: list[Entity], teams: dict[str, Team], plan: _Plan, *people: Any) -> None:
        """A source that defines a team owns its member list: members follow the Group and User documents."""
        if not self._touched_groups and not any(people):
            return
        groups = {e.name: e for e in entities if e.kind == "Group"}
        wanted: dict[str, dict[str, str]] = {slug: {} for slug in groups}
        extra: list[tuple[Team, str]] = []
        for slug, entity in groups.items():
            leads = set(entity.fields.get("leads", []))
            for member in entity.refs.get("members", []):
                wanted[slug][member.name] = "lead" if member.name in leads else "member"
            for lead in leads:
                wanted[slug][lead] = "lead"
        for entity in entities:
            if entity.kind == "User":
                for group in entity.refs.get("memberOf", []):
                    if group.name in wanted:
                        wanted[group.name].setdefault(entity.name, "member")
                    elif group.name in teams:  # a team whose file was unchanged: join it, remove no one
                        extra.append((teams[group.name], entity.name))
        user_model = get_user_model()
        names = {name for members in wanted.values() for name in members} | {name for _, name in extra}
        user_ids = dict(user_model.objects.filter(username__in=names).values_list("username", "pk"))
        for slug, members in wanted.items():
            unknown = sorted(set(members) - set(user_ids))
            if unknown:
                entity = groups[slug]
                self.report.errors.append(
                    Problem(
                        entity.path,
                        f"Unknown members left out: {', '.join(unknown)}.",
                        entity.index,
                        str(entity.ref),
                        "spec.members",
                    )
                )
        team_ids = [teams[slug].pk for slug in wanted if slug in teams]
        current = {(m.team_id, m.user_id): m for m in Membership.objects.filter(team_id__in=team_ids)}
        desired = {
            (teams[slug].pk, user_ids[name]): role
            for slug, members in wanted.items()
            if slug in teams
            for name, role in members.items()
            if name in user_ids
        }
        add = [Membership(team_id=t, user_id=u, role=r) for (t, u), r in desired.items() if (t, u) not in current]
        change = []
        for key, membership in current.items():
            if key in desired and membership.role != desired[key]:
                membership.role = desired[key]
                change.append(membership)
        remove = [m.pk for key, m in current.items() if key not in desired]
        for team, name in extra:
            if name in user_ids and (team.pk, user_ids[name]) not in current:
                add.append(Membership(team_id=team.pk, user_id=user_ids[name], role="member"))
                desired[(team.pk, user_ids[name])] = "member"
        Membership.objects.bulk_create(add, batch_size=2000, ignore_conflicts=True)
        Membership.objects.bulk_update(change, ["role"], batch_size=2000)
        group_ids = {team.pk: team.group_id for team in teams.values()}
        through = user_model.groups.through
        if remove:
            pairs = Membership.objects.filter(pk__in=remove).values_list("team_id", "user_id")
            for team_id, user_id in pairs:
                through.objects.filter(user_id=user_id, group_id=group_ids[team_id]).delete()
            Membership.objects.filter(pk__in=remove).delete()
        through.objects.bulk_create(
            [through(user_id=u, group_id=group_ids[t]) for (t, u) in desired], ignore_conflicts=True, batch_size=2000
        )

    def _grants(self, model: type, perms: list[str], owned: list[tuple[Any, Team, Team | None]]) -> None:
        """Give each object's owner group its permissions, taking them from the previous owner's group."""
        if not owned:
            return
        content_type = self.content_types[model]
        permissions = list(
            Permission.objects.filter(content_type=content_type, codename__in=[p.split(".")[1] for p in perms])
        )
        moved: dict[int, list[str]] = defaultdict(list)  # previous owner's group → objects it loses
        for obj, new, old in owned:
            if old is not None and old.pk != new.pk:
                moved[old.group_id].append(str(obj.pk))
        for group_id, object_pks in moved.items():
            GroupObjectPermission.objects.filter(
                group_id=group_id, content_type=content_type, object_pk__in=object_pks, permission__in=permissions
            ).delete()
        bulk.rows_insert(
            GroupObjectPermission,
            ["group_id", "content_type_id", "object_pk", "permission_id"],
            (
                (new.group_id, content_type.pk, str(obj.pk), permission.pk)
                for obj, new, _old in owned
                for permission in permissions
            ),
            ignore_conflicts=True,
        )

    def _systems(self, entities: list[Entity], teams: dict[str, Team]) -> dict[str, System]:
        plan = self._plan(entities, "System")
        systems = {s.slug: s for s in System.objects.select_related("owner")}
        created, changed = [], []
        owned: list[tuple[Any, Team, Team | None]] = []
        for entity in [*plan.create, *(e for e, _ in plan.update)]:
            owner = teams[entity.refs["owner"][0].name]
            system = systems.get(entity.name)
            if system is None:
                system = System(
                    slug=entity.name, name=entity.fields["name"], description=entity.fields["description"], owner=owner
                )
                created.append((entity, system))
                owned.append((system, owner, None))
            else:
                previous = system.owner
                system.name, system.description, system.owner = (
                    entity.fields["name"],
                    entity.fields["description"],
                    owner,
                )
                changed.append((entity, system))
                owned.append((system, owner, previous))
        System.objects.bulk_create([s for _, s in created], batch_size=2000)
        System.objects.bulk_update(
            _touched([s for _, s in changed], self.now), ["name", "description", "owner", "updated_at"], batch_size=2000
        )
        self._grants(System, SYSTEM_OWNER_PERMS, owned)
        for entity, system in created:
            systems[system.slug] = system
            self._record(entity, system, System, True)
        for entity, system in changed:
            self._record(entity, system, System, False)
        return systems

    def _simple(
        self, entities: list[Entity], kind: str, model: type, teams: dict[str, Team], systems: dict[str, System]
    ) -> dict[str, Any]:
        """Resources and APIs: owner, optional system, plain fields."""
        plan = self._plan(entities, kind)
        objects = {o.slug: o for o in model.objects.all()}
        attrs = [
            k
            for k in ("name", "description", "type", "lifecycle", "definition", "annotations")
            if any(f.name == k for f in model._meta.concrete_fields)
        ]
        created, changed = [], []
        for entity in [*plan.create, *(e for e, _ in plan.update)]:
            values = {a: entity.fields[a] for a in attrs}
            values["owner"] = teams[entity.refs["owner"][0].name]
            system_refs = entity.refs.get("system") or []
            values["system"] = systems[system_refs[0].name] if system_refs else None
            obj = objects.get(entity.name)
            if obj is None:
                obj = model(slug=entity.name, **values)
                created.append((entity, obj))
            else:
                for name, value in values.items():
                    setattr(obj, name, value)
                changed.append((entity, obj))
        model.objects.bulk_create([o for _, o in created], batch_size=2000)
        model.objects.bulk_update(
            _touched([o for _, o in changed], self.now), [*attrs, "owner", "system", "updated_at"], batch_size=2000
        )
        for entity, obj in created:
            objects[obj.slug] = obj
            self._record(entity, obj, model, True)
        for entity, obj in changed:
            self._record(entity, obj, model, False)
        return objects

    def _services(
        self,
        entities: list[Entity],
        teams: dict[str, Team],
        systems: dict[str, System],
        resources: dict[str, Resource],
        apis: dict[str, Api],
    ) -> None:
        plan = self._plan(entities, "Component")
        todo = [*plan.create, *(e for e, _ in plan.update)]
        if not todo:
            return
        attrs = [
            "name",
            "description",
            "lifecycle",
            "component_type",
            "tier",
            "language",
            "repository_url",
            "docs_url",
            "dashboard_url",
            "chat_channel",
            "on_call_url",
            "links",
            "annotations",
        ]
        services = {s.slug: s for s in Service.objects.select_related("owner").filter(slug__in=[e.name for e in todo])}
        created, changed = [], []
        owned: list[tuple[Any, Team, Team | None]] = []
        for entity in todo:
            values = {a: entity.fields[a] for a in attrs}
            owner = teams[entity.refs["owner"][0].name]
            system_refs = entity.refs.get("system") or []
            values["system"] = systems[system_refs[0].name] if system_refs else None
            service = services.get(entity.name)
            if service is None:
                service = Service(slug=entity.name, owner=owner, **values)
                created.append((entity, service))
                owned.append((service, owner, None))
            else:
                if (refusal := _retirement_refusal(service, values["lifecycle"])) is not None:
                    self.report.errors.append(
                        Problem(entity.path, refusal, entity.index, str(entity.ref), "spec.lifecycle")
                    )
                    continue
                previous = service.owner
                for name, value in values.items():
                    setattr(service, name, value)
                service.owner = owner
                changed.append((entity, service))
                owned.append((service, owner, previous))
        with bulk.gin_bulk_writes(Service, rows=len(created) + len(changed)):
            bulk.objects_insert(Service, [s for _, s in created])
            Service.objects.bulk_update(
                _touched([s for _, s in changed], self.now), [*attrs, "owner", "system", "updated_at"], batch_size=2000
            )
        self._grants(Service, SERVICE_OWNER_PERMS, owned)
        done = [*created, *changed]
        slugs = {
            s.slug: s
            for s in Service.objects.only("pk", "slug").filter(
                slug__in={r.name for e, _ in done for r in e.refs.get("dependsOn", []) if r.kind == "component"}
            )
        }
        slugs.update({s.slug: s for _, s in done})
        self._relations(done, [s.pk for _, s in changed], slugs, resources, apis)
        for entity, service in created:
            self._record(entity, service, Service, True)
        for entity, service in changed:
            self._record(entity, service, Service, False)
        from techdocs import sync as docs_sync

        rewritten = {s.pk for _, s in changed}
        docs_sync.docs_import(
            components=[(e, s) for e, s in done if e.docs or s.pk in rewritten],
            actor=self.actor,
            report=self.report,
            now=self.now,
            created={s.pk for _, s in created},
        )

    def _relations(
        self,
        done: list[tuple[Entity, Service]],
        existing: list[int],
        slugs: dict[str, Service],
        resources: dict[str, Resource],
        apis: dict[str, Api],
    ) -> None:
        """Tags, dependencies, resources and APIs of the written services: replaced by what the source says.

        Only `existing` services (updated, not created) can have rows to delete first."""
        names = {tag for entity, _ in done for tag in entity.fields["tags"]}
        Tag.objects.bulk_create([Tag(name=name) for name in names], ignore_conflicts=True, batch_size=2000)
        tags = dict(Tag.objects.filter(name__in=names).values_list("name", "pk"))
        tag_through = Service.tags.through
        if existing:
            tag_through.objects.filter(service_id__in=existing).delete()
        bulk.rows_insert(
            tag_through,
            ["service_id", "tag_id"],
            ((s.pk, tags[name]) for e, s in done for name in e.fields["tags"]),
        )
        if existing:
            Dependency.objects.filter(source_id__in=existing).delete()
        edges = []
        for entity, service in done:
            for ref in entity.refs.get("dependsOn", []):
                if ref.kind == "component" and ref.name != service.slug:
                    kind = entity.fields["dependency_kinds"].get(ref.name, "runtime")
                    edges.append((service.pk, slugs[ref.name].pk, kind, self.now))
        bulk.rows_insert(Dependency, ["source_id", "target_id", "kind", "created_at"], edges, ignore_conflicts=True)
        for relation, kind, key, lookup in (
            (Service.resources.through, "resource", "dependsOn", resources),
            (Api.providers.through, "api", "providesApis", apis),
            (Api.consumers.through, "api", "consumesApis", apis),
        ):
            column = "resource_id" if kind == "resource" else "api_id"
            if existing:
                relation.objects.filter(service_id__in=existing).delete()
            bulk.rows_insert(
                relation,
                ["service_id", column],
                ((s.pk, lookup[r.name].pk) for e, s in done for r in e.refs.get(key, []) if r.kind == kind),
                ignore_conflicts=True,
            )
