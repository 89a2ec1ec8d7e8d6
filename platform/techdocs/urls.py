from django.urls import path

from techdocs import views

app_name = "techdocs"
urlpatterns = [
    path("preview/", views.markdown_preview, name="markdown-preview"),
    path("services/<slug:service>/runbooks/new/", views.runbook_edit, name="runbook-create"),
    path("services/<slug:service>/runbooks/<slug:slug>/", views.runbook_detail, name="runbook-detail"),
    path("services/<slug:service>/runbooks/<slug:slug>/edit/", views.runbook_edit, name="runbook-edit"),
    path("services/<slug:service>/runbooks/<slug:slug>/review/", views.runbook_review, name="runbook-review"),
    path("services/<slug:service>/runbooks/<slug:slug>/history/", views.runbook_history, name="runbook-history"),
    path("services/<slug:service>/adrs/new/", views.adr_edit, name="adr-create"),
    path("services/<slug:service>/adrs/<int:number>/", views.adr_detail, name="adr-detail"),
    path("services/<slug:service>/adrs/<int:number>/edit/", views.adr_edit, name="adr-edit"),
    path("systems/<slug:system>/adrs/<int:number>/", views.system_adr_detail, name="system-adr-detail"),
]
