from django.apps import AppConfig


class ScaffolderConfig(AppConfig):
    name = "scaffolder"
    verbose_name = "Golden paths and scaffolding"
