from django.urls import path

from catalog import views
from monitoring import views as monitoring_views

app_name = "catalog"
urlpatterns = [
    path("", views.service_list, name="service-list"),
    # The health column of the list, filled after the (cached) page; monitoring answers it.
    path("health/", monitoring_views.catalog_health, name="service-list-health"),
    path("services/new/", views.service_create, name="service-create"),
    path("services/<slug:slug>/", views.service_detail, name="service-detail"),
    path("services/<slug:slug>/edit/", views.service_edit, name="service-edit"),
    path("services/<slug:slug>/transfer/", views.service_transfer, name="service-transfer"),
    path("services/<slug:slug>/dependencies/", views.dependency_add, name="dependency-add"),
    path("services/<slug:slug>/dependencies/<int:pk>/remove/", views.dependency_remove, name="dependency-remove"),
    path("services/<slug:slug>/catalog-info.yaml", views.service_descriptor, name="service-descriptor"),
    path("services/<slug:slug>/graph/", views.service_graph, name="service-graph"),
    path("apis/<slug:slug>/", views.api_detail, name="api-detail"),
    path("import/", views.import_create, name="import-create"),
    path("import/<int:pk>/", views.import_detail, name="import-detail"),
    path("export.zip", views.export_download, name="export"),
    path("systems/", views.system_list, name="system-list"),
    path("systems/<slug:slug>/", views.system_detail, name="system-detail"),
    path("systems/<slug:slug>/graph/", views.system_graph, name="system-graph"),
]
