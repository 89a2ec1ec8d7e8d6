from django.urls import path

from governance.api import views

urlpatterns = [
    path("policy-checks/", views.PolicyCheckView.as_view(), name="policy-check"),
]
