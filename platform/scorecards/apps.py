from django.apps import AppConfig


class ScorecardsConfig(AppConfig):
    name = "scorecards"
    verbose_name = "Scorecards"

    def ready(self) -> None:
        from scorecards import signals

        signals.connect()
        # The service page reads no scorecards for a service that no enabled scorecard scores.
        from django.db.models import Exists

        from catalog import selectors as catalog_selectors
        from scorecards.models import Score

        catalog_selectors.page_part_register(
            "scores", lambda ref: Exists(Score.objects.filter(service=ref, scorecard__enabled=True))
        )
