from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"

    def ready(self) -> None:
        from portal import validators

        validators.text_fields_guard()  # every app's models are loaded by now
