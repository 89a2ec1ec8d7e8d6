from django.apps import AppConfig


class ScaffolderConfig(AppConfig):
    name = "scaffolder"
    verbose_name = "Golden paths and scaffolding"

    def ready(self) -> None:
        # Registers the publisher settings check (scaffolder.E001), so `manage.py check` and startup report a
        # misconfigured SCAFFOLD_PUBLISHER before the first scaffold run fails on it.
        from scaffolder import publishers  # noqa: F401
