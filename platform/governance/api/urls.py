from django.urls import path
from rest_framework.routers import SimpleRouter

from governance.api import views

router = SimpleRouter()
router.register("policies", views.PolicyViewSet, basename="policy")
router.register("decisions", views.DecisionViewSet, basename="decision")
router.register("approvals", views.ApprovalRequestViewSet, basename="approval")
urlpatterns = [
    path("policy-checks/", views.PolicyCheckView.as_view(), name="policy-check"),
    path("evidence/", views.EvidenceView.as_view(), name="evidence"),
    *router.urls,
]
