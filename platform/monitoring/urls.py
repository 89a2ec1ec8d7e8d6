from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("services/<slug:slug>/slos/new/", views.slo_edit, name="slo-new"),
    path("slos/<int:pk>/edit/", views.slo_edit, name="slo-edit"),
    path("slos/<int:pk>/delete/", views.slo_delete, name="slo-delete"),
]
