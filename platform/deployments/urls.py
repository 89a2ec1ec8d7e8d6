from django.urls import path

from deployments import views

app_name = "deployments"
urlpatterns = [
    path("", views.board, name="board"),
    path("environments/", views.environments, name="environments"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/redeploy/", views.redeploy, name="redeploy"),
    path("<int:pk>/break-glass/", views.break_glass, name="break-glass"),
    path("<int:pk>/<slug:action>/", views.control, name="control"),
    path("new/<slug:slug>/", views.deploy, name="deploy"),
    path("decommissions/", views.decommissions, name="decommissions"),
    path("decommissions/<int:pk>/", views.decommission_detail, name="decommission"),
    path("decommissions/<int:pk>/<slug:action>/", views.decommission_control, name="decommission-control"),
    path("retire/<slug:slug>/", views.decommission_new, name="decommission-new"),
]
