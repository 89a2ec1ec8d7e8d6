from django.urls import path
from rest_framework.routers import SimpleRouter

from incidents.api import views

router = SimpleRouter()
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("postmortems", views.PostmortemViewSet, basename="postmortem")
router.register("alert-receivers", views.AlertReceiverViewSet, basename="alert-receiver")
urlpatterns = [
    path("incidents/alertmanager/", views.AlertmanagerWebhookView.as_view(), name="alertmanager-webhook"),
    *router.urls,
]
