from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Ownership reviews"

    def ready(self) -> None:
        from reviews import events

        events.connect()
        # The service page's ownership card reads no review item or handover for a service without an open one.
        from django.db.models import Exists, OuterRef

        from catalog import selectors as catalog_selectors
        from reviews.models import Campaign, Handover, Item

        def open_items(ref: OuterRef) -> Exists:
            return Exists(
                Item.objects.filter(service=ref, status=Item.Status.OPEN, campaign__status=Campaign.Status.OPEN)
            )

        def proposed_handovers(ref: OuterRef) -> Exists:
            return Exists(Handover.objects.filter(service=ref, status=Handover.Status.PROPOSED))

        catalog_selectors.page_part_register("review_items", open_items)
        catalog_selectors.page_part_register("handovers", proposed_handovers)
