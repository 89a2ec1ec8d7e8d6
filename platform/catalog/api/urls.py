from rest_framework.routers import SimpleRouter

from catalog.api import views

router = SimpleRouter()
router.register("services", views.ServiceViewSet, basename="service")
router.register("systems", views.SystemViewSet, basename="system")
router.register("dependencies", views.DependencyViewSet, basename="dependency")
urlpatterns = router.urls
