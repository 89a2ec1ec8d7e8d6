"""The flag pages (flags/urls.py is the OFREP protocol's, for SDKs)."""

from django.urls import path

from flags import views

app_name = "flags"
urlpatterns = [
    path("stale/", views.stale_list, name="stale"),
    path("segments/", views.segment_list, name="segment-list"),
    path("segments/new/", views.segment_edit, name="segment-new"),
    path("segments/<slug:slug>/edit/", views.segment_edit, name="segment-edit"),
    path("sdk-keys/<int:pk>/revoke/", views.sdk_key_revoke, name="sdk-key-revoke"),
    path("rollouts/<int:pk>/", views.rollout, name="rollout"),
    path("rollouts/<int:pk>/<slug:control>/", views.rollout, name="rollout-control"),
    path("changes/<int:pk>/approve/", views.change_answer, {"verdict": "approve"}, name="change-approve"),
    path("changes/<int:pk>/reject/", views.change_answer, {"verdict": "reject"}, name="change-reject"),
    path("services/<slug:slug>/", views.flag_list, name="flag-list"),
    path("services/<slug:slug>/new/", views.flag_create, name="flag-new"),
    path("services/<slug:slug>/sdk-keys/", views.sdk_keys, name="sdk-keys"),
    path("services/<slug:slug>/flagd/<slug:environment>/", views.flagd_export, name="flagd-export"),
    path("services/<slug:slug>/flags/<str:key>/", views.flag_detail, name="flag-detail"),
    path("services/<slug:slug>/flags/<str:key>/preview/", views.preview, name="preview"),
    path("services/<slug:slug>/flags/<str:key>/kill/", views.kill, name="kill"),
    path("services/<slug:slug>/flags/<str:key>/delete/", views.flag_delete, name="flag-delete"),
    path("services/<slug:slug>/flags/<str:key>/rollouts/", views.rollout_start, name="rollout-start"),
    path("services/<slug:slug>/flags/<str:key>/settings/<slug:environment>/", views.setting_edit, name="setting"),
    path("services/<slug:slug>/flags/<str:key>/toggle/<slug:environment>/", views.toggle, name="toggle"),
]
