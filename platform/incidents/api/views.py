"""Incidents API: anyone signed in reads and declares; the commander, the affected services' owners and platform
admins change an incident, post updates and link deployments (`incidents.permissions`, as on the pages)."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions as drf_exceptions
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deployments.models import Deployment
from incidents import alertmanager, permissions, selectors, services
from incidents.api.serializers import (
    AlertmanagerPayloadSerializer,
    AlertmanagerResultSerializer,
    IncidentLinkRequestSerializer,
    IncidentLinkSerializer,
    IncidentSerializer,
    IncidentUpdateSerializer,
    SuspectSerializer,
)
from incidents.models import Incident, Status
from portal.api import json_loads
from portal.filters import DayRangeForm, day_end, day_start, query_param


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Status.values, description="Only incidents in this status."),
            OpenApiParameter("service", str, description="Only incidents affecting this service (its slug)."),
            OpenApiParameter("since", OpenApiTypes.DATE, description="Only those that started on or after this day."),
            OpenApiParameter("until", OpenApiTypes.DATE, description="Only those that started on or before this day."),
        ]
    )
)
class IncidentViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Incidents, newest first; `?status=`, `?service=<slug>` and a range of days (`since`, `until`: when they
    started, in the portal's days) filter."""

    serializer_class = IncidentSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> Any:
        incidents = selectors.incident_list_visible(user=self.request.user).prefetch_related(
            "deployment_links__deployment__service", "deployment_links__deployment__release"
        )
        if self.action == "list":
            params = self.request.query_params
            if (value := params.get("status", "")) and value.isascii():
                incidents = incidents.filter(status=value)
            if (value := params.get("service", "")) and "\x00" not in value:
                incidents = incidents.filter(services__slug=value).distinct()
            days = DayRangeForm({"since": query_param(params, "since"), "until": query_param(params, "until")})
            if not days.is_valid():
                raise drf_exceptions.ValidationError(days.errors)
            if since := days.cleaned_data["since"]:
                incidents = incidents.filter(started_at__gte=day_start(since))
            if until := days.cleaned_data["until"]:
                incidents = incidents.filter(started_at__lt=day_end(until))
        return incidents.order_by("-started_at", "-pk")

    def _writable(self, incident: Incident) -> Incident:
        if not permissions.incident_can_write(self.request.user, incident):
            raise drf_exceptions.PermissionDenied(permissions.denied_message(incident))
        return incident

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        try:
            serializer.instance = services.incident_declare(
                title=data["title"],
                severity=data.get("severity", "SEV3"),
                summary=data.get("summary", ""),
                services=data["services"],
                commander=data.get("commander"),
                started_at=data.get("started_at"),
                created_by=self.request.user,  # type: ignore[arg-type]
                causes=data.get("causes", []),
            )
        except ValidationError as error:
            raise drf_exceptions.ValidationError(error.message_dict) from None

    def perform_update(self, serializer: Any) -> None:
        incident = self._writable(serializer.instance)
        data = dict(serializer.validated_data)
        data.pop("causes", None)
        services_given = data.pop("services", None)
        try:
            serializer.instance = services.incident_edit(
                incident=incident,
                user=self.request.user,  # type: ignore[arg-type]
                services=services_given,
                **data,
            )
        except ValidationError as error:
            raise drf_exceptions.ValidationError(error.message_dict) from None

    @extend_schema(
        request=IncidentUpdateSerializer,
        responses={200: IncidentUpdateSerializer(many=True), 201: IncidentUpdateSerializer},
    )
    @action(detail=True, methods=["get", "post"])
    def updates(self, request: Request, pk: str | None = None) -> Response:
        """The timeline (GET), or post a note and/or a new status (POST)."""
        incident = self.get_object()
        if request.method == "GET":
            return Response(IncidentUpdateSerializer(selectors.incident_updates(incident=incident), many=True).data)
        self._writable(incident)
        serializer = IncidentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        update = services.incident_update(
            incident=incident,
            user=request.user,  # type: ignore[arg-type]
            message=serializer.validated_data.get("message", ""),
            status=serializer.validated_data.get("status", ""),
        )
        return Response(IncidentUpdateSerializer(update).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=IncidentLinkRequestSerializer,
        responses={
            201: IncidentLinkSerializer,
            400: OpenApiResponse(description="No such deployment, or one that never reached users."),
        },
    )
    @action(detail=True, methods=["post"])
    def links(self, request: Request, pk: str | None = None) -> Response:
        """Mark a deployment as the incident's cause or its fix (linking again replaces the relation)."""
        incident = self._writable(self.get_object())
        serializer = IncidentLinkRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deployment = (
            Deployment.objects.select_related("service", "release", "environment")
            .filter(pk=serializer.validated_data["deployment"])
            .first()
        )
        if deployment is None:
            raise drf_exceptions.ValidationError({"deployment": ["No such deployment."]})
        link = services.incident_link(
            incident=incident,
            deployment=deployment,
            relation=serializer.validated_data["relation"],
            user=request.user,  # type: ignore[arg-type]
        )
        return Response(IncidentLinkSerializer(link).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: SuspectSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def suspects(self, request: Request, pk: str | None = None) -> Response:
        """Production deployments of the affected services or their dependencies in the hour before the start."""
        incident = self.get_object()
        return Response(SuspectSerializer(selectors.suspect_deployments(incident=incident), many=True).data)


class AlertmanagerWebhookView(APIView):
    """Prometheus Alertmanager's webhook (`webhook_configs`, payload version 4), authenticated with a receiver's
    token (`http_config.authorization.credentials`). Firing alerts with a `service` label open or join that service's
    incident for the alert group; resolved ones mitigate it."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        request=AlertmanagerPayloadSerializer,
        responses={
            200: AlertmanagerResultSerializer,
            400: OpenApiResponse(description="Malformed: not Alertmanager's version 4 JSON; the body says what."),
            401: OpenApiResponse(description="No receiver token, an unknown one, or a revoked one."),
            409: OpenApiResponse(description="This very notification was received before; nothing changed."),
            413: OpenApiResponse(description="Larger than INCIDENTS_ALERTMANAGER_MAX_BYTES."),
            422: OpenApiResponse(description="No alert has a service label, or one names no service in the catalog."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        try:
            receiver = alertmanager.receiver_authenticate(request.META.get("HTTP_AUTHORIZATION", ""))
            limit = settings.INCIDENTS["ALERTMANAGER_MAX_BYTES"]
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = limit + 1
            if length > limit:
                raise alertmanager.Refused(413, {"detail": f"Notifications are limited to {limit} bytes."})
            body = request.body
            if len(body) > limit:
                raise alertmanager.Refused(413, {"detail": f"Notifications are limited to {limit} bytes."})
            try:
                data = json_loads(body)
            except ValueError as error:
                raise alertmanager.Refused(
                    400, {"non_field_errors": [f"Not JSON Alertmanager sends: {error}"]}
                ) from None
            results = alertmanager.notification_receive(receiver=receiver, body=body, data=data)
        except alertmanager.Refused as refused:
            return Response(refused.errors, status=refused.status)
        return Response({"incidents": results})
