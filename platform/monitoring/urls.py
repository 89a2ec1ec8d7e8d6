from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("services/<slug:slug>/slos/new/", views.slo_edit, name="slo-new"),
    path("slos/<int:pk>/edit/", views.slo_edit, name="slo-edit"),
    path("slos/<int:pk>/delete/", views.slo_delete, name="slo-delete"),
    path("services/<slug:slug>/health-checks/new/", views.health_check_edit, name="health-check-new"),
    path("health-checks/<int:pk>/edit/", views.health_check_edit, name="health-check-edit"),
    path("health-checks/<int:pk>/delete/", views.health_check_delete, name="health-check-delete"),
]
