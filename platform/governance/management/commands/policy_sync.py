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
        sync.report_write(self, sync.policy_sync(root=path), path=path, plural="policies")
