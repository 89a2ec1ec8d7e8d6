from django.urls import path, re_path

from governance import views

app_name = "governance"
urlpatterns = [
    path("policies/", views.policy_list, name="policy-list"),
    path("policies/new/", views.policy_edit, name="policy-new"),
    path("policies/try/", views.policy_try, name="policy-try"),
    path("policies/<slug:name>/", views.policy_detail, name="policy-detail"),
    path("policies/<slug:name>/edit/", views.policy_edit, name="policy-edit"),
    path("freezes/", views.freeze_calendar, name="freeze-calendar"),
    path("freezes/new/", views.freeze_edit, name="freeze-new"),
    path("freezes/<int:pk>/edit/", views.freeze_edit, name="freeze-edit"),
    path("freezes/<int:pk>/delete/", views.freeze_delete, name="freeze-delete"),
    path("evidence/", views.evidence_report, name="evidence"),
    re_path(r"^evidence/export\.(?P<fmt>csv|json)$", views.evidence_export, name="evidence-export"),
    path("deploy-preview/<slug:slug>/", views.deploy_preview, name="deploy-preview"),
    path("decisions/<int:pk>/", views.decision_detail, name="decision-detail"),
    path("approvals/", views.approval_list, name="approval-list"),
    path("approvals/count/", views.approval_count, name="approval-count"),
    path("approvals/<int:pk>/<slug:verdict>/", views.approval_answer, name="approval-answer"),
]
