from django.urls import path

from governance import views

app_name = "governance"
urlpatterns = [
    path("policies/", views.policy_list, name="policy-list"),
    path("policies/new/", views.policy_edit, name="policy-new"),
    path("policies/try/", views.policy_try, name="policy-try"),
    path("policies/<slug:name>/", views.policy_detail, name="policy-detail"),
    path("policies/<slug:name>/edit/", views.policy_edit, name="policy-edit"),
    path("decisions/<int:pk>/", views.decision_detail, name="decision-detail"),
]
