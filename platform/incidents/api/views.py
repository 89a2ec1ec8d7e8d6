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
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deployments.models import Deployment
from incidents import alertmanager, permissions, postmortems, selectors, services
from incidents.api.serializers import (
    ActionItemSerializer,
    ActionStatusSerializer,
    AlertmanagerPayloadSerializer,
    AlertmanagerResultSerializer,
    AlertReceiverSerializer,
    IncidentLinkRequestSerializer,
    IncidentLinkSerializer,
    IncidentSerializer,
    IncidentUpdateSerializer,
    LessonSerializer,
    PostmortemSerializer,
    PostmortemStateSerializer,
    SuspectSerializer,
)
from incidents.models import ActionItem, AlertReceiver, Incident, Postmortem, Status
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


class PostmortemViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Blameless postmortems, newest first. Anyone signed in reads them; the incident's commander, the owners of an
    affected service and platform admins start one (POST with its incident), edit its sections while it is not
    published (PATCH), move its state, and add lessons and action items; only the owner team's members mark an
    action item done or open again."""

    serializer_class = PostmortemSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> Any:
        return (
            Postmortem.objects.select_related("incident", "author")
            .prefetch_related("lessons", "actions__owner_team", "actions__closed_by")
            .order_by("-created_at", "-pk")
        )

    def _writable(self, incident: Incident) -> Incident:
        if not permissions.incident_can_write(self.request.user, incident):
            raise drf_exceptions.PermissionDenied(permissions.denied_message(incident))
        return incident

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        incident = self._writable(data.pop("incident"))
        existed = Postmortem.objects.filter(incident=incident).exists()
        postmortem = postmortems.postmortem_start(incident=incident, user=request.user)  # type: ignore[arg-type]
        fields = {name: data[name] for name in postmortems.FIELDS if name in data}
        if fields:
            postmortem = postmortems.postmortem_save(postmortem=postmortem, user=request.user, **fields)  # type: ignore[arg-type]
        answer = self.get_serializer(self.get_queryset().get(pk=postmortem.pk)).data
        return Response(answer, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    def perform_update(self, serializer: Any) -> None:
        postmortem = serializer.instance
        self._writable(postmortem.incident)
        data = dict(serializer.validated_data)
        moved = data.pop("incident", postmortem.incident)
        if moved.pk != postmortem.incident_id:
            raise drf_exceptions.ValidationError({"incident": ["A postmortem stays with its incident."]})
        postmortems.postmortem_save(postmortem=postmortem, user=self.request.user, **data)  # type: ignore[arg-type]
        serializer.instance = self.get_queryset().get(pk=postmortem.pk)

    @extend_schema(
        request=PostmortemStateSerializer,
        responses={
            200: PostmortemSerializer,
            400: OpenApiResponse(description="Publishing without a summary, the impact or the contributing factors."),
            409: OpenApiResponse(description="Not a move its state allows (a published postmortem is final)."),
        },
    )
    @action(detail=True, methods=["post"])
    def state(self, request: Request, pk: str | None = None) -> Response:
        """Draft → in review → published (in review may go back to draft)."""
        postmortem = self.get_object()
        self._writable(postmortem.incident)
        serializer = PostmortemStateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        postmortems.postmortem_transition(
            postmortem=postmortem,
            user=request.user,  # type: ignore[arg-type]
            state=serializer.validated_data["state"],
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=postmortem.pk)).data)

    @extend_schema(request=LessonSerializer, responses={201: LessonSerializer})
    @action(detail=True, methods=["post"])
    def lessons(self, request: Request, pk: str | None = None) -> Response:
        """Add a lesson (it becomes an ADR or a runbook change on the postmortem's page)."""
        postmortem = self.get_object()
        self._writable(postmortem.incident)
        serializer = LessonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lesson = postmortems.lesson_add(
            postmortem=postmortem,
            user=request.user,  # type: ignore[arg-type]
            text=serializer.validated_data["text"],
        )
        return Response(LessonSerializer(lesson).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ActionItemSerializer, responses={201: ActionItemSerializer})
    @action(detail=True, methods=["post"])
    def actions(self, request: Request, pk: str | None = None) -> Response:
        """Ask a team for work, with a due date."""
        postmortem = self.get_object()
        self._writable(postmortem.incident)
        serializer = ActionItemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = postmortems.action_add(
            postmortem=postmortem,
            user=request.user,  # type: ignore[arg-type]
            **{name: serializer.validated_data[name] for name in ("title", "owner_team", "due_date")},
        )
        return Response(ActionItemSerializer(item).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ActionStatusSerializer,
        responses={
            200: ActionItemSerializer,
            403: OpenApiResponse(description="Only the owner team's members close or reopen an action item."),
        },
    )
    @action(detail=True, methods=["post"], url_path=r"actions/(?P<action_pk>[0-9]{1,18})/status")
    def action_status(self, request: Request, pk: str | None = None, action_pk: str | None = None) -> Response:
        """Mark an action item done, or open again: its owner team's members only (not the incident's owners, not
        platform admins)."""
        postmortem = self.get_object()
        item = (
            ActionItem.objects.select_related("owner_team", "closed_by")
            .filter(pk=int(action_pk or 0), postmortem=postmortem)
            .first()
        )
        if item is None:
            raise drf_exceptions.NotFound("No such action item in this postmortem.")
        serializer = ActionStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not postmortems.action_can_close(request.user, item):
            raise drf_exceptions.PermissionDenied(
                f"Only members of {item.owner_team.name} close or reopen this action item."
            )
        item = postmortems.action_set_status(
            item=item,
            user=request.user,  # type: ignore[arg-type]
            status=serializer.validated_data["status"],
        )
        return Response(ActionItemSerializer(item).data)


class AlertReceiverViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Alertmanager receivers and their tokens: platform admins only, as on the receivers page. A new receiver's
    token is in the creation's answer only (its SHA-256 digest is all Runway keeps); revoking refuses it from then
    on."""

    serializer_class = AlertReceiverSerializer
    permission_classes = [IsAdminUser]
    queryset = AlertReceiver.objects.select_related("created_by").order_by("name")

    @extend_schema(responses={201: AlertReceiverSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        receiver, token = alertmanager.receiver_create(
            name=serializer.validated_data["name"],
            created_by=request.user,  # type: ignore[arg-type]
        )
        answer = AlertReceiverSerializer(receiver, context={"token": token}).data
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: AlertReceiverSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """From now on its token is refused (401); what it did stays."""
        receiver = alertmanager.receiver_revoke(receiver=self.get_object(), user=request.user)  # type: ignore[arg-type]
        return Response(AlertReceiverSerializer(receiver).data)
