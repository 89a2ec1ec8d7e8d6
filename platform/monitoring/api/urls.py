from rest_framework.routers import SimpleRouter

from monitoring.api import views

router = SimpleRouter()
router.register("health-checks", views.HealthCheckViewSet, basename="health-check")
urlpatterns = router.urls
