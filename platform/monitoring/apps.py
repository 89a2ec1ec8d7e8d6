from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from catalog import sync
        from monitoring import openslo, services

        # SLO files sit next to catalog-info.yaml and arrive with the catalog's import.
        sync.foreign_documents_register(openslo.API_VERSION, services.slo_documents_import)
        from deployments import signals

        signals.deployment_placed.connect(services.deployment_placed_watch, dispatch_uid="monitoring.watch_deployed")
        signals.service_stopped.connect(services.service_stopped_pause, dispatch_uid="monitoring.pause_stopped")
        # The service page reads no checks or SLOs for a service that has none.
        from django.db.models import Exists

        from catalog import selectors as catalog_selectors
        from monitoring.models import SLO, HealthCheck

        catalog_selectors.page_part_register(
            "health_checks", lambda ref: Exists(HealthCheck.objects.filter(service=ref))
        )
        catalog_selectors.page_part_register("slos", lambda ref: Exists(SLO.objects.filter(service=ref)))
