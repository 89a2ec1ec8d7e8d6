"""Runbook and ADR API; editing needs change permission on the service, as on the pages."""

from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from techdocs import services
from techdocs.api.serializers import AdrSerializer, RunbookSerializer, RunbookVersionSerializer
from techdocs.models import ADR, Runbook
from techdocs.permissions import docs_require_change


def _refuse_imported(obj: Runbook | ADR) -> None:
    if obj.source_path:
        raise ValidationError(
            {"source_path": f"This document comes from {obj.source_path} in a catalog source; change the file there."}
        )


class RunbookViewSet(viewsets.ModelViewSet):
    """Runbooks; every update keeps a version (see /versions/). Filter with ?service=<slug>&stale=true."""

    serializer_class = RunbookSerializer
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    filterset_fields = {"service__slug": ["exact"], "slug": ["exact"]}

    def get_queryset(self) -> Any:
        queryset = Runbook.objects.select_related("service__owner").order_by("service__slug", "slug")
        stale = self.request.query_params.get("stale")
        if stale in ("true", "false"):
            due = queryset.filter(review_due_at__lt=timezone.now())
            queryset = due if stale == "true" else queryset.exclude(pk__in=due.values("pk"))
        return queryset

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        data.pop("note", None)
        data.setdefault("body", "")  # optional in the API (the model allows blank), required by runbook_create
        docs_require_change(user=self.request.user, service=data["service"])
        serializer.instance = services.runbook_create(created_by=self.request.user, **data)

    def perform_update(self, serializer: Any) -> None:
        runbook = serializer.instance
        docs_require_change(user=self.request.user, service=runbook.service)
        _refuse_imported(runbook)
        data = serializer.validated_data
        serializer.instance = services.runbook_update(
            runbook=runbook,
            updated_by=self.request.user,
            title=data.get("title", runbook.title),
            body=data.get("body", runbook.body),
            note=data.get("note", ""),
            review_interval_days=data.get("review_interval_days"),
        )

    @extend_schema(responses=RunbookVersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        runbook = self.get_object()
        page = self.paginate_queryset(runbook.versions.order_by("-number"))
        return self.get_paginated_response(RunbookVersionSerializer(page, many=True).data)

    @extend_schema(request=None, responses=RunbookSerializer)
    @action(detail=True, methods=["post"])
    def review(self, request: Request, pk: str | None = None) -> Response:
        """Record a review without an edit."""
        runbook = self.get_object()
        docs_require_change(user=request.user, service=runbook.service)
        runbook = services.runbook_mark_reviewed(runbook=runbook, reviewed_by=request.user)
        return Response(RunbookSerializer(runbook).data)


class AdrViewSet(viewsets.ModelViewSet):
    """Architecture decision records of services; `supersedes` on create marks the older one superseded."""

    serializer_class = AdrSerializer
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    filterset_fields = {"service__slug": ["exact"], "status": ["exact"]}

    def get_queryset(self) -> Any:
        return (
            ADR.objects.filter(service__isnull=False)
            .select_related("service__owner", "superseded_by")
            .order_by("service__slug", "number")
        )

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        service = data["service"]
        docs_require_change(user=self.request.user, service=service)
        number = data.pop("supersedes", None)
        older = ADR.objects.filter(service=service, number=number).first() if number else None
        if number and older is None:
            raise ValidationError({"supersedes": f"{service} has no ADR {number}."})
        serializer.instance = services.adr_create(created_by=self.request.user, supersedes=older, **data)

    def perform_update(self, serializer: Any) -> None:
        adr = serializer.instance
        docs_require_change(user=self.request.user, service=adr.service)
        _refuse_imported(adr)
        data = {k: v for k, v in serializer.validated_data.items() if k not in ("service", "supersedes")}
        serializer.instance = services.adr_update(adr=adr, updated_by=self.request.user, **data)
