from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from catalog import sync
        from monitoring import openslo, services

        # SLO files sit next to catalog-info.yaml and arrive with the catalog's import.
        sync.foreign_documents_register(openslo.API_VERSION, services.slo_documents_import)
