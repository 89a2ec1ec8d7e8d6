from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "flags"
    verbose_name = "Feature flags"

    def ready(self) -> None:
        # Held production flag changes wait for the same approvers as deployments: governance's inbox lists them.
        from flags import changes
        from governance import selectors

        selectors.waiting_source_register(changes.waiting_for)
        # The service page reads no flags for a service that has none.
        from django.db.models import Exists

        from catalog import selectors as catalog_selectors
        from flags.models import Flag

        catalog_selectors.page_part_register("flags", lambda ref: Exists(Flag.objects.filter(service=ref)))
