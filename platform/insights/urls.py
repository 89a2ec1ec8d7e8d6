"""Insights pages, included under the portal's namespace at /insights/ (the navigation links to portal:insights)."""

from django.urls import path

from insights import views

urlpatterns = [
    path("", views.overview, name="insights"),
    path("dora.csv", views.dora_csv, name="insights-csv"),
    path("teams/<slug:slug>/", views.scope_page, {"kind": "team"}, name="insights-team"),
    path("systems/<slug:slug>/", views.scope_page, {"kind": "system"}, name="insights-system"),
    path("services/<slug:slug>/", views.scope_page, {"kind": "service"}, name="insights-service"),
]
