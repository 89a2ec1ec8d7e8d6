from django.apps import AppConfig


class TechdocsConfig(AppConfig):
    name = "techdocs"
    verbose_name = "Runbooks and ADRs"
