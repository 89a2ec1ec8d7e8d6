from django.urls import path
from rest_framework.routers import SimpleRouter

from flags.api import views

router = SimpleRouter()
router.register("flags", views.FlagViewSet, basename="flag")
router.register("flag-changes", views.FlagChangeViewSet, basename="flag-change")
router.register("flag-rollouts", views.FlagRolloutViewSet, basename="flag-rollout")
router.register("flag-segments", views.SegmentViewSet, basename="flag-segment")
urlpatterns = [
    path("flagd/<slug:service>/<slug:environment>/", views.FlagdExportView.as_view(), name="flagd-export"),
    *router.urls,
]
