from django.urls import path
from rest_framework.routers import SimpleRouter

from catalog.api import views

router = SimpleRouter()
router.register("services", views.ServiceViewSet, basename="service")
router.register("systems", views.SystemViewSet, basename="system")
router.register("dependencies", views.DependencyViewSet, basename="dependency")
router.register("catalog/imports", views.ImportRunViewSet, basename="catalog-import")
urlpatterns = [path("catalog/export/", views.ExportView.as_view(), name="catalog-export"), *router.urls]
