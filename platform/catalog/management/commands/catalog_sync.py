"""`manage.py catalog_sync PATH`: import a catalog-as-code tree, print the per-entity report."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from catalog import sync
from portal import tasks as portal_tasks


class Command(BaseCommand):
    help = "Import Backstage-style descriptors (with runbooks and ADRs) from a folder. Safe to run again."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--source", help="Name of the source (default: the folder's absolute path).")

    def handle(self, *args: Any, path: Path, source: str | None, **options: Any) -> None:
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder.")
        report = sync.catalog_import(root=path, source_name=source or str(path.resolve()), location=str(path))
        indexed = portal_tasks.search_index()  # a command should leave things finished, not wait for a worker
        summary = report.as_dict()
        self.stdout.write(
            f"Imported from {path}: created {summary['created'] or 'nothing'}, "
            f"updated {summary['updated'] or 'nothing'}, {summary['unchanged']} unchanged, "
            f"{len(report.missing)} missing from the source; {indexed} search entries indexed."
        )
        for name in report.missing:
            self.stdout.write(self.style.WARNING(f"  missing from source: {name}"))
        for problem in report.errors:
            where = problem.file + (f" (document {problem.document})" if problem.document is not None else "")
            what = f"{problem.entity} " if problem.entity else ""
            field = f"{problem.field}: " if problem.field else ""
            self.stdout.write(self.style.ERROR(f"  {where}: {what}{field}{problem.message}"))
        for problem in report.warnings:
            where = problem.file + (f" (document {problem.document})" if problem.document is not None else "")
            self.stdout.write(self.style.WARNING(f"  {where}: {problem.entity} {problem.field}: {problem.message}"))
        if report.errors:
            self.stdout.write(self.style.WARNING(f"{len(report.errors)} problem(s); the valid entities were imported."))
