"""Score the shipped anomaly detector on a folder of labelled series (the NAB format) and print one line."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring import anomaly


class Command(BaseCommand):
    help = "Score the anomaly detector's shipped configuration on a folder of CSV series and labels.json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, help="Folder of timestamp,value CSV files and their labels.json.")

    def handle(self, *args: Any, folder: Path, **options: Any) -> None:
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder")
        try:
            score = anomaly.score_folder(folder)
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(score.line())
