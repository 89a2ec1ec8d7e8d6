from rest_framework.routers import SimpleRouter

from scaffolder.api import views

router = SimpleRouter()
router.register("golden-paths", views.GoldenPathViewSet, basename="golden-path")
router.register("scaffold-runs", views.ScaffoldRunViewSet, basename="scaffold-run")
router.register("golden-path-updates", views.GoldenPathUpdateViewSet, basename="golden-path-update")
urlpatterns = router.urls
