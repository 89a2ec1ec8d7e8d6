from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"

    def ready(self) -> None:
        # deployments sends release_recorded; Insights records the release's change set (deployments never imports
        # Insights: the arrows run downwards).
        from deployments.signals import release_recorded
        from insights import services

        release_recorded.connect(services.on_release_recorded, dispatch_uid="insights.change_set")
