from django.urls import path

from governance import views

app_name = "governance"
urlpatterns = [
    path("policies/", views.policy_list, name="policy-list"),
    path("policies/<slug:name>/", views.policy_detail, name="policy-detail"),
    path("decisions/<int:pk>/", views.decision_detail, name="decision-detail"),
]
