"""Feature flags API: every signed-in user reads a service's flags and what each environment serves, as on the flag
pages; its owner team and platform admins create and change them and pull the kill switch; segments are the
organisation's, so platform admins change them. Every write is the pages' own service function (flags/services.py),
so validation, versions and audit are the same whichever way a change comes in."""

from typing import Any

from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.models import Service
from catalog.permissions import user_can
from deployments.models import Environment
from flags import changes, flagd, rollouts, services
from flags.api.serializers import (
    FlagChangeRejectSerializer,
    FlagChangeSerializer,
    FlagCreateSerializer,
    FlagRolloutSerializer,
    FlagSerializer,
    FlagUpdateSerializer,
    RolloutStartSerializer,
    SegmentSerializer,
    SettingUpdateSerializer,
)
from flags.models import Flag, FlagChange, FlagRollout, FlagRolloutEvent, FlagSetting, Segment
from portal.api import LookupMixin, StaffWritePermission


def _require_change(user: Any, service: Service) -> None:
    if not user_can(user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can change {service}'s flags.")


@extend_schema_view(
    create=extend_schema(request=FlagCreateSerializer, responses={201: FlagSerializer}),
    partial_update=extend_schema(request=FlagUpdateSerializer, responses={200: FlagSerializer}),
)
class FlagViewSet(viewsets.ModelViewSet):
    """Feature flags with each environment's setting. Filter with ?service__slug=<slug>&key=<key>."""

    serializer_class = FlagSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    filterset_fields = {"service__slug": ["exact"], "key": ["exact"], "kind": ["exact"]}

    def get_queryset(self) -> Any:
        settings = FlagSetting.objects.select_related("environment").order_by("environment__order")
        return (
            Flag.objects.select_related("service__owner")
            .prefetch_related(Prefetch("settings", queryset=settings))
            .order_by("service__slug", "key")
        )

    def _answer(self, flag: Flag, code: int = status.HTTP_200_OK) -> Response:
        return Response(FlagSerializer(self.get_queryset().get(pk=flag.pk)).data, status=code)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = FlagCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        service = data.pop("service")
        _require_change(request.user, service)
        flag = services.flag_create(actor=request.user, service=service, flag_type=data.pop("type"), **data)
        return self._answer(flag, status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        flag = self.get_object()
        _require_change(request.user, flag.service)
        serializer = FlagUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.flag_update(actor=request.user, flag=flag, **serializer.validated_data)
        return self._answer(flag)

    @extend_schema(
        request=SettingUpdateSerializer,
        responses={
            200: FlagSerializer,
            202: OpenApiResponse(FlagChangeSerializer, "Held by a require_approval policy: applied once approved."),
        },
        parameters=[OpenApiParameter("environment", str, OpenApiParameter.PATH, description="The environment's slug.")],
    )
    @action(detail=True, methods=["patch"], url_path=r"settings/(?P<environment>[-a-zA-Z0-9_]+)")
    def setting(self, request: Request, pk: str | None = None, environment: str = "") -> Response:
        """Change what one environment serves: on or off, default variant, rules, rollout (only the fields sent). In a
        protected environment the deploy policies judge it first: a refusal is a 400 with their messages; a change
        that needs approval answers 202 with the held change (see /api/v1/flag-changes/)."""
        flag = self.get_object()
        env = get_object_or_404(Environment, slug=environment)
        _require_change(request.user, flag.service)
        serializer = SettingUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.setting_change(actor=request.user, flag=flag, environment=env, **serializer.validated_data)
        if isinstance(result, FlagChange):
            return Response(FlagChangeSerializer(result).data, status=status.HTTP_202_ACCEPTED)
        return self._answer(flag)

    @extend_schema(
        request=RolloutStartSerializer,
        responses={
            201: FlagRolloutSerializer,
            202: OpenApiResponse(FlagChangeSerializer, "Held by a require_approval policy: starts once approved."),
        },
    )
    @action(detail=True, methods=["post"])
    def rollouts(self, request: Request, pk: str | None = None) -> Response:
        """Start a progressive rollout of one variant in one environment; a worker takes its first step at once. In a
        protected environment the deploy policies judge the release first: 400 when refused, 202 with the held start
        when it needs approval (it starts when approved)."""
        flag = self.get_object()
        _require_change(request.user, flag.service)
        serializer = RolloutStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        env = Environment.objects.filter(slug=data.pop("environment")).first()
        if env is None:
            raise ValidationError({"environment": ["No such environment."]})
        started = rollouts.rollout_start(actor=request.user, flag=flag, environment=env, **data)
        if isinstance(started, FlagChange):
            return Response(FlagChangeSerializer(started).data, status=status.HTTP_202_ACCEPTED)
        return Response(FlagRolloutSerializer(_rollouts().get(pk=started.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: FlagSerializer, 403: None, 404: None})
    @action(detail=True, methods=["post"])
    def kill(self, request: Request, pk: str | None = None) -> Response:
        """The kill switch: the flag off in every environment at once (its owner team and platform admins)."""
        flag = self.get_object()
        _require_change(request.user, flag.service)
        services.kill(actor=request.user, flag=flag)
        return self._answer(flag)


class SegmentViewSet(LookupMixin, viewsets.ModelViewSet):
    """Segments: reusable audiences that rules name by slug. Everyone signed in reads; platform admins write. A
    segment's slug never changes, and one that rules still name cannot be deleted (409 says which)."""

    serializer_class = SegmentSerializer
    permission_classes = [IsAuthenticated, StaffWritePermission]
    lookup_field = "slug"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_fields = {"slug": ["exact"]}
    queryset = Segment.objects.order_by("name")

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.segment_save(actor=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        segment = serializer.instance
        data = serializer.validated_data
        serializer.instance = services.segment_save(
            actor=self.request.user,
            slug=segment.slug,
            name=data.get("name", segment.name),
            conditions=data.get("conditions", segment.conditions),
            description=data.get("description", segment.description),
        )

    def perform_destroy(self, instance: Segment) -> None:
        services.segment_delete(actor=self.request.user, segment=instance)


class FlagChangeViewSet(viewsets.ReadOnlyModelViewSet):
    """Production flag changes held by a require_approval policy, newest first; filter with ?status=open. Their
    eligible approvers (never the requester) approve or reject them; the last approval needed applies the change."""

    serializer_class = FlagChangeSerializer
    filterset_fields = {"status": ["exact"], "flag": ["exact"], "flag__service__slug": ["exact"]}
    queryset = FlagChange.objects.select_related("flag__service", "environment", "requested_by").order_by(
        "-created_at", "-id"
    )

    @extend_schema(request=None, responses={200: FlagChangeSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        change = changes.flag_change_approve(change_id=self.get_object().pk, user=request.user)
        return Response(FlagChangeSerializer(self.get_queryset().get(pk=change.pk)).data)

    @extend_schema(request=FlagChangeRejectSerializer, responses={200: FlagChangeSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        change = self.get_object()
        serializer = FlagChangeRejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes.flag_change_reject(change_id=change.pk, user=request.user, reason=serializer.validated_data["reason"])
        return Response(FlagChangeSerializer(self.get_queryset().get(pk=change.pk)).data)


class FlagdExportView(APIView):
    """A service's flags in one environment as a flagd flag definition file (docs/flags.md, "flagd export"): every
    signed-in user reads flags, so every signed-in user may export them."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="flagd_export",
        parameters=[
            OpenApiParameter("service", str, OpenApiParameter.PATH, description="The service's slug."),
            OpenApiParameter("environment", str, OpenApiParameter.PATH, description="The environment's slug."),
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="A flagd flag definition document (https://flagd.dev/schema/v0/flags.json).",
            ),
            404: None,
        },
    )
    def get(self, request: Request, service: str, environment: str) -> HttpResponse:
        found = get_object_or_404(Service, slug=service)
        return flagd.download(service=found, environment=get_object_or_404(Environment, slug=environment))


def _rollouts() -> Any:
    events = FlagRolloutEvent.objects.select_related("actor").order_by("at", "id")
    return (
        FlagRollout.objects.select_related("flag__service__owner", "environment")
        .prefetch_related(Prefetch("events", queryset=events))
        .order_by("-created_at", "-id")
    )


class FlagRolloutViewSet(viewsets.ReadOnlyModelViewSet):
    """Progressive rollouts of flags with their timelines, newest first; filter with ?state=running. The owner team
    and platform admins pause, resume, promote (the variant to everyone now) and abort (back to the setting as it
    was before the rollout)."""

    serializer_class = FlagRolloutSerializer
    filterset_fields = {"state": ["exact"], "flag": ["exact"], "flag__service__slug": ["exact"]}

    def get_queryset(self) -> Any:
        return _rollouts()

    def _control(self, request: Request, control: Any) -> Response:
        found = self.get_object()
        _require_change(request.user, found.flag.service)
        control(rollout_id=found.pk, actor=request.user)
        return Response(FlagRolloutSerializer(self.get_queryset().get(pk=found.pk)).data)

    @extend_schema(request=None, responses={200: FlagRolloutSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._control(request, rollouts.rollout_pause)

    @extend_schema(request=None, responses={200: FlagRolloutSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._control(request, rollouts.rollout_resume)

    @extend_schema(request=None, responses={200: FlagRolloutSerializer})
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str | None = None) -> Response:
        return self._control(request, rollouts.rollout_promote)

    @extend_schema(request=None, responses={200: FlagRolloutSerializer})
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str | None = None) -> Response:
        return self._control(request, rollouts.rollout_abort)
