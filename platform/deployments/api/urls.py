from rest_framework.routers import SimpleRouter

from deployments.api import views

router = SimpleRouter()
router.register("environments", views.EnvironmentViewSet, basename="environment")
urlpatterns = router.urls
