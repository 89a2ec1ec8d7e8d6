from rest_framework.routers import SimpleRouter

from techdocs.api import views

router = SimpleRouter()
router.register("runbooks", views.RunbookViewSet, basename="runbook")
router.register("adrs", views.AdrViewSet, basename="adr")
urlpatterns = router.urls
