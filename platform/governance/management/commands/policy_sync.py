"""`manage.py policy_sync PATH`: sync deploy policies from YAML files, print the per-policy report."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance import sync


class Command(BaseCommand):
    help = "Sync deploy policies (CEL, with their tests) from a folder of YAML files or one file. Safe to run again."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, path: Path, **options: Any) -> None:
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        report = sync.policy_sync(root=path)
        self.stdout.write(
            f"Policies from {path}: created {', '.join(report.created) or 'none'}, "
            f"changed {', '.join(report.changed) or 'none'}, {len(report.unchanged)} unchanged, "
            f"{len(report.missing)} missing from the source."
        )
        for name in report.missing:
            self.stdout.write(self.style.WARNING(f"  missing from source, disabled: {name}"))
        for file, policy, message in report.errors:
            self.stdout.write(self.style.ERROR(f"  {file}: {policy + ': ' if policy else ''}{message}"))
        if report.errors:
            self.stdout.write(self.style.WARNING(f"{len(report.errors)} problem(s); the valid policies were synced."))
