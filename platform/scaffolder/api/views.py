"""Golden paths and scaffold runs over the API, with the same validation as the wizard."""

from typing import Any

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from scaffolder import drift, registry, services
from scaffolder.api.filters import GoldenPathUpdateFilterSet
from scaffolder.api.serializers import (
    GoldenPathSerializer,
    GoldenPathUpdateListSerializer,
    GoldenPathUpdateRequestSerializer,
    GoldenPathUpdateSerializer,
    ScaffoldRequestSerializer,
    ScaffoldRunSerializer,
)
from scaffolder.models import GoldenPathUpdate, ScaffoldRun


class GoldenPathViewSet(viewsets.ViewSet):
    """The golden paths this portal offers, with their parameter schemas and wizard steps."""

    lookup_field = "name"
    serializer_class = GoldenPathSerializer

    def list(self, request: Request) -> Response:
        return Response(GoldenPathSerializer(registry.golden_path_list(), many=True).data)

    @extend_schema(parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH)])
    def retrieve(self, request: Request, name: str | None = None) -> Response:
        path = registry.golden_path_get(name or "")
        if path is None:
            raise exceptions.NotFound(f"There is no golden path called {name}.")
        return Response(GoldenPathSerializer(path).data)


class ScaffoldRunViewSet(viewsets.GenericViewSet):
    """Start a scaffold run (202) and follow its status and timeline."""

    serializer_class = ScaffoldRunSerializer
    lookup_field = "uuid"

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no real user
            return ScaffoldRun.objects.none()
        user: Any = self.request.user
        runs = ScaffoldRun.objects.select_related("owner", "system", "service", "requested_by")
        if user.is_staff:
            return runs
        return runs.filter(Q(requested_by=user) | Q(owner__memberships__user=user)).distinct()

    @extend_schema(request=ScaffoldRequestSerializer, responses={202: ScaffoldRunSerializer})
    def create(self, request: Request) -> Response:
        payload = ScaffoldRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        path = registry.golden_path_get(data["golden_path"])
        if path is None:
            raise exceptions.ValidationError(
                {"golden_path": [f"There is no golden path called {data['golden_path']}."]}
            )
        run = services.scaffold_request(
            path=path,
            answers=data["answers"],
            owner=data["owner"],
            system=data.get("system"),
            requested_by=request.user,
            display_name=data["display_name"],
        )
        return Response(ScaffoldRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    def retrieve(self, request: Request, uuid: str | None = None) -> Response:
        return Response(ScaffoldRunSerializer(self.get_object()).data)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset().order_by("-created_at"))
        return self.get_paginated_response(ScaffoldRunSerializer(page, many=True).data)


class GoldenPathUpdateViewSet(viewsets.GenericViewSet):
    """Updates from a golden path: ask for one (202), follow it, then merge, check again or discard it.

    Any signed-in user can read them (as the service page); asking and acting need change permission on the service.
    """

    serializer_class = GoldenPathUpdateSerializer
    lookup_field = "uuid"
    filterset_class = GoldenPathUpdateFilterSet

    def get_queryset(self) -> Any:
        return GoldenPathUpdate.objects.select_related("service", "requested_by", "merged_by")

    @extend_schema(responses=GoldenPathUpdateListSerializer(many=True))
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()).defer("diff").order_by("-created_at"))
        return self.get_paginated_response(GoldenPathUpdateListSerializer(page, many=True).data)

    def retrieve(self, request: Request, uuid: str | None = None) -> Response:
        return Response(GoldenPathUpdateSerializer(self.get_object()).data)

    @extend_schema(request=GoldenPathUpdateRequestSerializer, responses={202: GoldenPathUpdateSerializer})
    def create(self, request: Request) -> Response:
        payload = GoldenPathUpdateRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        update = drift.update_request(service=payload.validated_data["service"], requested_by=request.user)
        return Response(GoldenPathUpdateSerializer(update).data, status=status.HTTP_202_ACCEPTED)

    def _act(self, act: Any) -> Response:
        return Response(GoldenPathUpdateSerializer(act(update=self.get_object(), user=self.request.user)).data)

    @extend_schema(request=None, responses=GoldenPathUpdateSerializer)
    @action(detail=True, methods=["post"])
    def merge(self, request: Request, uuid: str | None = None) -> Response:
        """Merge the branch into main; 400 while files have conflicts."""
        return self._act(drift.update_merge)

    @extend_schema(request=None, responses=GoldenPathUpdateSerializer)
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, uuid: str | None = None) -> Response:
        """Read the branch again, after a fix for its conflicts was pushed."""
        return self._act(drift.update_refresh)

    @extend_schema(request=None, responses=GoldenPathUpdateSerializer)
    @action(detail=True, methods=["post"])
    def discard(self, request: Request, uuid: str | None = None) -> Response:
        return self._act(drift.update_discard)
