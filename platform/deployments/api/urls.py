from django.urls import path
from rest_framework.routers import SimpleRouter

from deployments.api import views

router = SimpleRouter()
router.register("environments", views.EnvironmentViewSet, basename="environment")
router.register("releases", views.ReleaseViewSet, basename="release")
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("placements", views.PlacementViewSet, basename="placement")
router.register("decommissions", views.DecommissionViewSet, basename="decommission")
urlpatterns = [
    path("deployments/<int:pk>/callback/", views.DeploymentCallbackView.as_view(), name="deployment-callback"),
    path("deploy-events/", views.DeployEventView.as_view(), name="deploy-event"),
    *router.urls,
]
