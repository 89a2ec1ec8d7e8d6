from django.urls import path

from deployments import views

app_name = "deployments"
urlpatterns = [
    path("", views.board, name="board"),
    path("environments/", views.environments, name="environments"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/redeploy/", views.redeploy, name="redeploy"),
    path("<int:pk>/<slug:action>/", views.control, name="control"),
    path("new/<slug:slug>/", views.deploy, name="deploy"),
]
