from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Ownership reviews"

    def ready(self) -> None:
        from reviews import events

        events.connect()
