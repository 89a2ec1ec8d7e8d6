from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"

    def ready(self) -> None:
        # deployments sends release_recorded; Insights records the release's change set (deployments never imports
        # Insights: the arrows run downwards).
        from deployments.signals import release_recorded
        from insights import services

        release_recorded.connect(services.on_release_recorded, dispatch_uid="insights.change_set")
        # The daily rollups follow every change to a deployment and to the incidents that name one (insights.rollups).
        from django.db.models.signals import post_delete, post_init, post_save

        from catalog.models import Service
        from deployments.models import Deployment
        from incidents.models import Incident, IncidentDeployment

        post_save.connect(services.on_deployment_saved, sender=Deployment, dispatch_uid="insights.rollups.deployment")
        post_save.connect(services.on_incident_saved, sender=Incident, dispatch_uid="insights.rollups.incident")
        for name, signal in (("saved", post_save), ("deleted", post_delete)):
            signal.connect(
                services.on_incident_link_changed, sender=IncidentDeployment, dispatch_uid=f"insights.rollups.{name}"
            )
        # A team's or system's rows follow the services it holds (a transfer rewrites both sides').
        post_init.connect(services.on_service_loaded, sender=Service, dispatch_uid="insights.rollups.service_loaded")
        post_save.connect(services.on_service_saved, sender=Service, dispatch_uid="insights.rollups.service_saved")
