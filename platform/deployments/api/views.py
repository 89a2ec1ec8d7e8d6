"""Deployments API: environments, releases, deployments with their controls, reported deploys and what runs where.

Reads are open to every signed-in user (token or session); every write goes through `deployments.services`,
which checks the deploy permission on the service, so the API and the pages refuse the same things.
"""

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import Service
from deployments import decommission, services, webhooks
from deployments.api.serializers import (
    BreakGlassSerializer,
    DecommissionDetailSerializer,
    DecommissionRequestSerializer,
    DecommissionSerializer,
    DeployEventResultSerializer,
    DeployEventSerializer,
    DeploymentDetailSerializer,
    DeploymentRequestSerializer,
    DeploymentSerializer,
    EnvironmentSerializer,
    PlacementSerializer,
    ReleaseSerializer,
)
from deployments.filters import DecommissionFilterSet, DeploymentFilterSet, PlacementFilterSet, ReleaseFilterSet
from deployments.models import Decommission, Deployment, Environment, Placement, Release
from portal.api import LookupMixin, StaffWritePermission


def _forbidden(error: PermissionDenied) -> drf_exceptions.PermissionDenied:
    return drf_exceptions.PermissionDenied(str(error) or None)


class EnvironmentViewSet(LookupMixin, viewsets.ModelViewSet):
    """Deployment targets in promotion order; platform admins manage them."""

    serializer_class = EnvironmentSerializer
    permission_classes = [IsAuthenticated, StaffWritePermission]
    lookup_field = "slug"
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    queryset = Environment.objects.order_by("order", "name")

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.environment_create(created_by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.environment_update(
            environment=serializer.instance, updated_by=self.request.user, **serializer.validated_data
        )


class ReleaseViewSet(viewsets.ReadOnlyModelViewSet):
    """Releases by service (`?service=<slug>`), newest first."""

    serializer_class = ReleaseSerializer
    filterset_class = ReleaseFilterSet

    def get_queryset(self) -> Any:
        return Release.objects.select_related("service").order_by("-created_at", "-id")


class DeploymentViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Deployments, newest first. Filter with `?service=`, `?environment=` and `?state=`.

    POST starts one: 201 with the pending deployment, 400 with field errors, 403 without deploy permission on the
    service, 409 naming the deployment already active for that service and environment.
    """

    filterset_class = DeploymentFilterSet

    def get_queryset(self) -> Any:
        queryset = Deployment.objects.select_related(
            "service", "environment", "release", "release__service", "previous_release", "requested_by"
        ).order_by("-created_at", "-id")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("events")
        return queryset

    def get_serializer_class(self) -> Any:
        if self.action == "create":
            return DeploymentRequestSerializer
        return DeploymentDetailSerializer if self.action == "retrieve" else DeploymentSerializer

    @extend_schema(request=DeploymentRequestSerializer, responses={201: DeploymentSerializer, 409: OpenApiResponse()})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = DeploymentRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        service = Service.objects.filter(slug=data["service"]).first()
        environment = Environment.objects.filter(slug=data["environment"]).first()
        errors = {}
        if service is None:
            errors["service"] = [f"No service called {data['service']}."]
        if environment is None:
            errors["environment"] = [f"No environment called {data['environment']}."]
        if errors:
            raise drf_exceptions.ValidationError(errors)
        release = None
        if data.get("release"):
            release = Release.objects.filter(service=service, version=data["release"]).first()
            if release is None:
                raise drf_exceptions.ValidationError({"release": [f"{service} has no release {data['release']}."]})
        try:
            deployment = services.deployment_request(
                service=service,  # type: ignore[arg-type]
                environment=environment,  # type: ignore[arg-type]
                user=request.user,  # type: ignore[arg-type]
                ref=data.get("ref", ""),
                release=release,
                strategy=data.get("strategy", ""),
            )
        except PermissionDenied as error:
            raise _forbidden(error) from None
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    def _control(self, request: Request, call: Any, **kwargs: Any) -> Response:
        deployment = self.get_object()
        try:
            result = call(deployment=deployment, user=request.user, **kwargs)
        except PermissionDenied as error:
            raise _forbidden(error) from None
        code = status.HTTP_201_CREATED if result.pk != deployment.pk else status.HTTP_200_OK
        return Response(DeploymentSerializer(result).data, status=code)

    @extend_schema(request=None, responses=DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str) -> Response:
        """Skip the remaining steps: the release takes all traffic now."""
        return self._control(request, services.deployment_promote)

    @extend_schema(request=None, responses=DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str) -> Response:
        """Cancel before the rollout starts, or fail the deployment and roll it back."""
        return self._control(request, services.deployment_abort)

    @extend_schema(request=None, responses=DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return self._control(request, services.deployment_pause, paused=True)

    @extend_schema(request=None, responses=DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._control(request, services.deployment_pause, paused=False)

    @extend_schema(request=BreakGlassSerializer, responses={201: DeploymentSerializer})
    @action(detail=True, methods=["post"], url_path="break-glass")
    def break_glass(self, request: Request, pk: str) -> Response:
        """Ask for an emergency deploy of this release (a new deployment, flagged break-glass) that waits for one
        platform admin's approval; policies see `change.break_glass`."""
        body = BreakGlassSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._control(request, services.deployment_break_glass, reason=body.validated_data["reason"])

    @extend_schema(request=None, responses={201: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def redeploy(self, request: Request, pk: str) -> Response:
        """Deploy this release again as a new deployment (a rollback to it)."""
        return self._control(request, services.deployment_redeploy)


class DeployEventView(APIView):
    """Report a deployment done by an external CD system (GitHub Actions, Argo CD...), with an API token."""

    @extend_schema(
        request=DeployEventSerializer,
        responses={201: DeployEventResultSerializer, 404: OpenApiResponse(description="No such service.")},
    )
    def post(self, request: Request) -> Response:
        serializer = DeployEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        service = get_object_or_404(Service, slug=data.pop("service"))
        environment = Environment.objects.filter(slug=data["environment"]).first()
        if environment is None:
            raise drf_exceptions.ValidationError({"environment": [f"No environment called {data['environment']}."]})
        data.pop("environment")
        try:
            deployment = services.deploy_event_record(
                service=service,
                environment=environment,
                user=request.user,  # type: ignore[arg-type]
                committed_at=data.pop("committed_at", None),
                started_at=data.pop("started_at", None),
                finished_at=data.pop("finished_at", None),
                **data,
            )
        except PermissionDenied as error:
            raise _forbidden(error) from None
        return Response(DeployEventResultSerializer(deployment).data, status=status.HTTP_201_CREATED)


class PlacementViewSet(viewsets.ReadOnlyModelViewSet):
    """What runs where: one row per service and environment. Filter with `?service=` or `?environment=`."""

    serializer_class = PlacementSerializer
    filterset_class = PlacementFilterSet

    def get_queryset(self) -> Any:
        return Placement.objects.select_related("service", "environment", "release").order_by(
            "service__slug", "environment__order"
        )


class DeploymentCallbackView(APIView):
    """A CD system's signed report on a step of a deployment that runs on the webhook runtime.

    No session or token: the HMAC signature over the timestamp and the raw body, made with the deploy target's
    webhook secret, is the authentication (see `deployments.webhooks`). 202 when stored; 400 with field errors
    for a malformed report; 403 for an unsigned, forged, stale or replayed one, or one for a finished deployment.
    """

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={202: OpenApiResponse(), 400: OpenApiResponse(), 403: OpenApiResponse()})
    def post(self, request: Request, pk: int) -> Response:
        try:
            callback = webhooks.callback_receive(deployment_id=pk, body=request.body, headers=request.headers)
        except webhooks.CallbackRefused as refused:
            return Response({"detail": f"Callback refused: {refused}."}, status=status.HTTP_403_FORBIDDEN)
        except ValidationError as error:
            return Response(error.message_dict, status=status.HTTP_400_BAD_REQUEST)
        return Response({"id": callback.pk, "step": callback.step, "status": callback.status}, status=202)


class DecommissionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Service retirements, newest first (`?service=`, `?state=`).

    POST asks to retire a service: 201, 400 with field errors (the `service` error lists the services that still
    depend on it and the deployments in flight), 403 without the decommission permission, 409 naming an open one.
    """

    filterset_class = DecommissionFilterSet

    def get_queryset(self) -> Any:
        queryset = Decommission.objects.select_related("service", "requested_by", "approved_by")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("events")
        return queryset.order_by("-created_at", "-id")

    def get_serializer_class(self) -> Any:
        if self.action == "create":
            return DecommissionRequestSerializer
        return DecommissionDetailSerializer if self.action == "retrieve" else DecommissionSerializer

    @extend_schema(request=DecommissionRequestSerializer, responses={201: DecommissionSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = DecommissionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        service = Service.objects.filter(slug=data["service"]).first()
        if service is None:
            raise drf_exceptions.ValidationError({"service": [f"No service called {data['service']}."]})
        try:
            retirement = decommission.decommission_request(
                service=service,
                user=request.user,  # type: ignore[arg-type]
                reason=data["reason"],
                planned_for=data["planned_for"],
            )
        except PermissionDenied as error:
            raise _forbidden(error) from None
        return Response(DecommissionSerializer(retirement).data, status=status.HTTP_201_CREATED)

    def _control(self, request: Request, call: Any) -> Response:
        retirement = self.get_object()
        try:
            result = call(decommission=retirement, user=request.user)
        except PermissionDenied as error:
            raise _forbidden(error) from None
        return Response(DecommissionSerializer(result).data)

    @extend_schema(request=None, responses=DecommissionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        """A lead of the owning team (not the requester) or an admin approves; the checks run again first."""
        return self._control(request, decommission.decommission_approve)

    @extend_schema(request=None, responses=DecommissionSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Withdraw it, as long as nothing has been stopped yet."""
        return self._control(request, decommission.decommission_cancel)

    @extend_schema(request=None, responses=DecommissionSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        """Run the failed step again from where it stopped."""
        return self._control(request, decommission.decommission_resume)
