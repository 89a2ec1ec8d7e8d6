from django.urls import path

from insights.api import views

urlpatterns = [path("insights/dora/", views.DoraView.as_view(), name="insights-dora")]
