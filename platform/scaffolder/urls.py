from django.urls import path

from scaffolder import views

app_name = "scaffolder"
urlpatterns = [
    path("", views.path_list, name="list"),
    path("runs/<uuid:uuid>/", views.run_detail, name="run-detail"),
    path("runs/<uuid:uuid>/retry/", views.run_retry, name="run-retry"),
    path("repositories/<slug:slug>/", views.repository, name="repository"),
    path("repositories/<slug:slug>/update/", views.update_request, name="update-request"),
    path("updates/<uuid:uuid>/", views.update_detail, name="update-detail"),
    path("updates/<uuid:uuid>/<slug:action>/", views.update_action, name="update-action"),
    path("<slug:name>/step/<int:number>/", views.wizard_step, name="step"),
    path("<slug:name>/owner/", views.wizard_owner, name="owner"),
    path("<slug:name>/preview/", views.wizard_preview, name="preview"),
    path("<slug:name>/confirm/", views.wizard_confirm, name="confirm"),
]
