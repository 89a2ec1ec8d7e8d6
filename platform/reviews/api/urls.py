from rest_framework.routers import SimpleRouter

from reviews.api import views

router = SimpleRouter()
router.register("review-campaigns", views.CampaignViewSet, basename="review-campaign")
router.register("review-items", views.ItemViewSet, basename="review-item")
router.register("handovers", views.HandoverViewSet, basename="handover")
urlpatterns = router.urls
