"""Catalog API: services, systems and dependencies, with the same permissions as the pages."""

import json
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import ProtectedError
from django.http import HttpResponse, HttpResponseBase
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import cache as catalog_cache
from catalog import export, imports, selectors, services
from catalog.api.serializers import (
    DependencySerializer,
    ExportQuerySerializer,
    ImportRunSerializer,
    ImportSerializer,
    ServiceSerializer,
    SystemSerializer,
    TransferSerializer,
)
from catalog.filters import DependencyFilterSet, ServiceFilterSet, SystemFilterSet
from catalog.models import Dependency, ImportRun
from catalog.permissions import SERVICE_PERMS, SYSTEM_PERMS, ObjectActionPermission, user_can
from portal.api import LookupMixin, protected_message
from portal.errors import Conflict
from portal.pagination import CountedPaginator

# The API is the top layer: a transfer by anyone but a platform admin is a handover proposal (ownership reviews).
from reviews import services as reviews
from reviews.api.serializers import HandoverSerializer

CACHE_SECONDS = 300
JSON_MEDIA_TYPE = JSONRenderer.media_type


class ServiceViewSet(LookupMixin, viewsets.ModelViewSet):
    """Services in the catalog. Filters: owner, lifecycle, tier, system, tag, q (text); ordering: name, owner,
    tier, lifecycle, updated (prefix - for descending)."""

    serializer_class = ServiceSerializer
    filterset_class = ServiceFilterSet
    permission_classes = [IsAuthenticated, ObjectActionPermission]
    object_perms = SERVICE_PERMS
    lookup_field = "slug"

    def get_queryset(self) -> Any:
        return selectors.service_list_visible(user=self.request.user)

    def _cached_list_key(self, request: Request) -> str | None:
        """Where a list page is cached, or None for a page that is not (see list)."""
        # "stale" depends on the clock as well as on writes, so it is never served from cache.
        if self.action != "list" or not settings.CATALOG_API_CACHE or "stale" in request.query_params:
            return None
        return catalog_cache.entry_key("api-services", request.get_full_path())

    def throttle_prefetch(self, request: Request) -> list[str]:
        """The cached page, fetched in the rate limit's round trip (see ApiTokenRateThrottle)."""
        key = self._cached_list_key(request)
        return catalog_cache.prefetch([key]) if key else []

    def list(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:  # type: ignore[override]
        """The catalog is the same for every reader, so a page is cached until the catalog next changes.

        Only with a shared cache (Redis): a per-process cache would not see another process's writes. The page is
        cached as the JSON bytes it is sent as, and served as they are to a plain `Accept: application/json`.
        """
        key = self._cached_list_key(request)
        if key is None:
            return super().list(request, *args, **kwargs)
        fetched, found = getattr(request, "throttle_prefetched", (None, None))
        made_for, fresh = catalog_cache.read([key], found=found if fetched == catalog_cache.prefetch([key]) else None)
        body = fresh.get(key)
        if body is None:
            data = super().list(request, *args, **kwargs).data
            body = JSONRenderer().render(data)
            catalog_cache.write(key, made_for, body, timeout=CACHE_SECONDS)
        if type(request.accepted_renderer) is JSONRenderer and request.accepted_media_type == JSON_MEDIA_TYPE:
            return HttpResponse(body, content_type=JSON_MEDIA_TYPE)
        return Response(json.loads(body))  # another renderer (the browsable API) or media type parameters

    def paginate_queryset(self, queryset: Any) -> Any:
        """Counts the filtered catalog once per catalog version instead of on every page."""
        count_key = ServiceFilterSet.count_key(self.request.query_params)
        if settings.CATALOG_API_CACHE and count_key is not None and self.paginator is not None:
            count = partial(catalog_cache.remembered, count_key, queryset.count)
            self.paginator.django_paginator_class = partial(CountedPaginator, count=count)  # type: ignore[attr-defined]
        return super().paginate_queryset(queryset)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.service_create(created_by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.service_update(
            service=serializer.instance, updated_by=self.request.user, **serializer.validated_data
        )

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Remove a service registered by mistake (platform admins). One with deploy history is refused with a
        409: retire it with a decommission instead, which keeps that history."""
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: Any) -> None:
        try:
            services.service_delete(service=instance, deleted_by=self.request.user)
        except ProtectedError as error:
            raise Conflict(
                f"{instance.slug} has deploy history and cannot be deleted ({protected_message(error)[:-1].lower()}). "
                f"Decommission it instead (POST /api/v1/decommissions/), which retires it and keeps its history.",
                existing_url=reverse("deployments:decommission-new", kwargs={"slug": instance.slug}),
            ) from None

    @extend_schema(
        request=TransferSerializer,
        responses={
            200: ServiceSerializer,
            202: OpenApiResponse(
                response=HandoverSerializer,
                description="Proposed: the service moves once a lead of the receiving team accepts the handover.",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def transfer(self, request: Request, slug: str | None = None) -> Response:
        """Hand the service to another team. A platform admin moves it at once (200, with its permissions); anyone
        else with the change permission proposes a handover that a lead of the receiving team accepts (202)."""
        service = self.get_object()
        payload = TransferSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        if not request.user.is_staff:
            handover = reviews.handover_propose(
                service=service,
                to_team=payload.validated_data["new_owner"],
                proposed_by=request.user,  # type: ignore[arg-type]
                note=payload.validated_data["note"],
            )
            data = HandoverSerializer(handover, context=self.get_serializer_context()).data
            return Response(data, status=status.HTTP_202_ACCEPTED)
        service = services.service_transfer(service=service, transferred_by=request.user, **payload.validated_data)
        return Response(ServiceSerializer(service, context=self.get_serializer_context()).data)


class SystemViewSet(LookupMixin, viewsets.ModelViewSet):
    serializer_class = SystemSerializer
    filterset_class = SystemFilterSet
    permission_classes = [IsAuthenticated, ObjectActionPermission]
    object_perms = SYSTEM_PERMS
    lookup_field = "slug"
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_queryset(self) -> Any:
        return selectors.system_list_visible(user=self.request.user).order_by("name")

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.system_create(created_by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        system = serializer.instance
        data = serializer.validated_data
        serializer.instance = services.system_update(
            system=system,
            updated_by=self.request.user,
            name=data.get("name", system.name),
            description=data.get("description", system.description),
        )

    @extend_schema(request=TransferSerializer, responses=SystemSerializer)
    @action(detail=True, methods=["post"])
    def transfer(self, request: Request, slug: str | None = None) -> Response:
        system = self.get_object()
        payload = TransferSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        system = services.system_transfer(
            system=system, transferred_by=request.user, new_owner=payload.validated_data["new_owner"]
        )
        return Response(SystemSerializer(system).data)


class DependencyViewSet(viewsets.ModelViewSet):
    """Edges of the dependency graph; changing them needs change permission on the depending (source) service."""

    serializer_class = DependencySerializer
    filterset_class = DependencyFilterSet
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        return selectors.dependency_list_visible(user=self.request.user).order_by("id")

    def perform_create(self, serializer: Any) -> None:
        source = serializer.validated_data["source"]
        if not user_can(self.request.user, "catalog.change_service", source):
            raise PermissionDenied(f"Only {source.owner} can change {source}'s dependencies.")
        serializer.instance = services.dependency_add(added_by=self.request.user, **serializer.validated_data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        dependency: Dependency = self.get_object()
        if not user_can(request.user, "catalog.change_service", dependency.source):
            raise PermissionDenied(f"Only {dependency.source.owner} can change {dependency.source}'s dependencies.")
        services.dependency_remove(dependency=dependency, removed_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImportRunViewSet(viewsets.GenericViewSet):
    """Catalog-as-code imports (platform admins): POST an archive, then poll the run for its per-entity report."""

    serializer_class = ImportRunSerializer
    permission_classes = [IsAuthenticated, IsAdminUser]
    parser_classes = [MultiPartParser, FormParser]
    queryset = ImportRun.objects.select_related("created_by").order_by("-created_at")

    @extend_schema(request={"multipart/form-data": ImportSerializer}, responses={202: ImportRunSerializer})
    def create(self, request: Request) -> Response:
        payload = ImportSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        upload = payload.validated_data["archive"]
        try:
            run = imports.import_request(
                data=upload.read(),
                filename=upload.name,
                requested_by=request.user,
                source_name=payload.validated_data.get("source") or f"upload:{upload.name}",
            )
        except ValueError as error:
            raise drf_exceptions.ValidationError({"archive": [str(error)]}) from error
        return Response(ImportRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(ImportRunSerializer(self.get_object()).data)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ImportRunSerializer(page, many=True).data)


class ExportView(APIView):
    """Descriptors and docs as a zip: ?team=<slug> (its services), ?service=<slug>, or the whole catalog."""

    @extend_schema(
        parameters=[ExportQuerySerializer],
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No such team or service."),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return export.zip_response(team=query.validated_data.get("team"), service=query.validated_data.get("service"))
