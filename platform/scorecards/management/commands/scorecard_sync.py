"""`manage.py scorecard_sync PATH`: sync scorecards from YAML files, print the per-scorecard report."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from governance import sync as governed
from scorecards import sync


class Command(BaseCommand):
    help = "Sync scorecards (levels of CEL rules, with their tests) from a folder of YAML files or one file."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: Any, path: Path, **options: Any) -> None:
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        governed.report_write(self, sync.scorecard_sync(root=path), path=path, plural="scorecards")
