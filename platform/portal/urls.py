"""Top-level URLs: pages per app, the API under /api/v1/, the schema and its docs."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal import api, metrics, views
from portal.api_root import ApiRootView

portal_urls: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    path("insights/", include("insights.urls")),
    path("search/", views.search_page, name="search"),
]
portal_patterns = (portal_urls, "portal")

api_v1: list[URLPattern | URLResolver] = [
    path("", ApiRootView.as_view(), name="root"),
    # The catalog first: its reads are the API's most frequent, and every pattern tried before theirs costs each one.
    path("", include("catalog.api.urls")),
    path("", include("teams.api.urls")),
    path("", include("deployments.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("techdocs.api.urls")),
    path("", include("scaffolder.api.urls")),
    path("", include("insights.api.urls")),
    path("", include("governance.api.urls")),
    path("", include("scorecards.api.urls")),
    path("", include("incidents.api.urls")),
    path("", include("monitoring.api.urls")),
    path("", include("flags.api.urls")),
    path("", include("reviews.api.urls")),
]

urlpatterns = [
    # The API first: its clients' requests are most of a portal's and the most frequent, and no page shares its prefix.
    path("api/v1/", include((api_v1, "api"))),
    path("healthz", views.healthz, name="healthz"),
    path("", include(portal_patterns)),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("accounts/", include("accounts.urls")),
    path("teams/", include("teams.urls")),
    path("catalog/", include("catalog.urls")),
    path("docs/", include("techdocs.urls")),
    path("create/", include("scaffolder.urls")),
    path("deployments/", include("deployments.urls")),
    path("audit/", include("audit.urls")),
    path("governance/", include("governance.urls")),
    path("scorecards/", include("scorecards.urls")),
    path("reviews/", include("reviews.urls")),
    path("incidents/", include("incidents.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("flags/", include("flags.page_urls")),
    # OpenFeature SDKs evaluate flags here (OFREP), with an SDK key instead of a session.
    path("ofrep/", include("flags.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's set-up script as a resource of its own: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Any other path under /api/ answers as the API does (JSON), not with the HTML 404 page.
    re_path(r"^api/", api.not_found),
    path("admin/", admin.site.urls),
]
