"""Governance API: the deploy policies and their decisions (read-only: policies change in the editor or through
policy files), and a dry run of the policies for a pipeline that deploys outside Runway."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import Service
from governance import approvals, evidence, selectors, services
from governance.api.filters import ApprovalRequestFilterSet, DecisionFilterSet
from governance.api.serializers import (
    ApprovalRejectSerializer,
    ApprovalRequestSerializer,
    DecisionDetailSerializer,
    DecisionSerializer,
    EvidenceQuerySerializer,
    EvidenceSerializer,
    PolicyCheckRequestSerializer,
    PolicyCheckSerializer,
    PolicySerializer,
)
from portal.api import LookupMixin


class PolicyCheckView(APIView):
    """Ask what each enabled deploy policy says about a change before making it. Any signed-in user may ask: the
    answer changes nothing (it is recorded as a decision with no deployment)."""

    def throttle_prefetch(self, request: Request) -> list[str]:
        """The enabled policies' generation, read in the token's round trip to the cache (accounts/throttling.py)."""
        return selectors.policies_generation_prefetch()

    @extend_schema(
        request=PolicyCheckRequestSerializer,
        responses={
            200: PolicyCheckSerializer,
            400: OpenApiResponse(description="A field is missing or wrong; the body says which."),
            404: OpenApiResponse(description="No such service."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = PolicyCheckRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            decision = services.policy_check(
                service=data["service"],
                environment=data["environment"],
                version=data["version"],
                commit_sha=data.get("commit_sha", ""),
                strategy=data.get("strategy", ""),
                user=request.user,
                policies_generation=selectors.policies_generation_found(
                    getattr(request, "throttle_prefetched", ([], {}))[1]
                ),
            )
        except Service.DoesNotExist as missing:
            raise drf_exceptions.NotFound(str(missing)) from None
        return Response(PolicyCheckSerializer(decision).data, status=status.HTTP_200_OK)


class PolicyViewSet(LookupMixin, viewsets.ReadOnlyModelViewSet):
    """The deploy policies, each with the version that judges; readable by every signed-in user."""

    serializer_class = PolicySerializer
    lookup_field = "name"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.policy_list().order_by("name")


class DecisionViewSet(viewsets.ReadOnlyModelViewSet):
    """Every judgement of the policies: a deployment's policy step, or a dry run. The detail has the fact document."""

    filterset_class = DecisionFilterSet

    def get_queryset(self):  # type: ignore[no-untyped-def]
        decisions = selectors.decision_list().order_by("-created_at", "-pk")
        return decisions if self.action == "retrieve" else decisions.defer("facts")  # the list leaves it out

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return DecisionDetailSerializer if self.action == "retrieve" else DecisionSerializer


class EvidenceView(APIView):
    """The change-management evidence: every change to a protected environment in a period, with requester,
    approvals, policy decisions (with versions), outcome and break-glass flag. Auditors (`governance.view_evidence`)
    and platform admins read any scope; others the teams they belong to."""

    @extend_schema(
        parameters=[EvidenceQuerySerializer],
        responses={
            200: EvidenceSerializer,
            400: OpenApiResponse(description="A field is wrong; the body says which."),
            403: OpenApiResponse(description="The scope asked for is another team's."),
        },
    )
    def get(self, request: Request) -> Response:
        query = EvidenceQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            report = evidence.report_build(user=request.user, **query.validated_data)
        except DjangoValidationError as error:
            raise drf_exceptions.ValidationError(error.message_dict) from None
        return Response(EvidenceSerializer(report.document()).data)


class ApprovalRequestViewSet(viewsets.ReadOnlyModelViewSet):
    """Approval requests, newest first (filters: status, kind, service, deployment, `waiting_for_me`). Readable by
    every signed-in user, as deployments are; approving and rejecting is for the eligible people only (403)."""

    serializer_class = ApprovalRequestSerializer
    filterset_class = ApprovalRequestFilterSet

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.approval_requests().prefetch_related("answers").order_by("-created_at", "-pk")

    def _answered(self, pk: str | None) -> Response:
        request = selectors.approval_requests().prefetch_related("answers").get(pk=pk)
        return Response(self.get_serializer(request).data)

    @extend_schema(request=None, responses={200: ApprovalRequestSerializer, 403: None, 409: None})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve: refused (403) for the requester and anyone the policy does not name; 409 once it is closed."""
        approval = self.get_object()
        approvals.approval_approve(request_id=approval.pk, user=request.user)
        return self._answered(pk)

    @extend_schema(request=ApprovalRejectSerializer, responses={200: ApprovalRequestSerializer, 403: None, 409: None})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        """Reject with a reason: the deployment is cancelled."""
        approval = self.get_object()
        body = ApprovalRejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        approvals.approval_reject(request_id=approval.pk, user=request.user, reason=body.validated_data["reason"])
        return self._answered(pk)
