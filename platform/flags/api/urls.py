from rest_framework.routers import SimpleRouter

from flags.api import views

router = SimpleRouter()
router.register("flags", views.FlagViewSet, basename="flag")
router.register("flag-changes", views.FlagChangeViewSet, basename="flag-change")
router.register("flag-segments", views.SegmentViewSet, basename="flag-segment")
urlpatterns = router.urls
