"""Catalog API: services, systems and dependencies, with the same permissions as the pages."""

import json
import re
from collections.abc import Callable, Sequence
from functools import lru_cache, update_wrapper
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, ProtectedError, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.urls import get_script_prefix, reverse
from django.utils.encoding import iri_to_uri
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

from accounts.authentication import ApiTokenAuthentication, token_check, token_words
from accounts.throttling import ApiTokenRateThrottle, counted_allows
from catalog import cache as catalog_cache
from catalog import documents, export, imports, selectors, services, text_search
from catalog.api.pagination import CURSOR_PARAM, ServicePagination, Window
from catalog.api.serializers import (
    DependencySerializer,
    ExportQuerySerializer,
    ImportRunSerializer,
    ImportSerializer,
    ServiceSerializer,
    SystemSerializer,
    TransferSerializer,
)
from catalog.api.statements import Shape, Statement, shape_of, statement_learn, statements
from catalog.filters import DependencyFilterSet, ServiceApiFilterSet, ServiceFilterSet, SystemFilterSet
from catalog.models import Dependency, ImportRun, ServiceDocument
from catalog.permissions import SERVICE_PERMS, SYSTEM_PERMS, ObjectActionPermission, user_can
from portal.api import LookupMixin, plain_json_asked, protected_message
from portal.errors import Conflict

# The API is the top layer: a transfer by anyone but a platform admin is a handover proposal (ownership reviews).
from reviews import services as reviews
from reviews.api.serializers import HandoverSerializer

CACHE_SECONDS = 300
JSON_MEDIA_TYPE = JSONRenderer.media_type
_PLAIN_SLUG = re.compile(r"[A-Za-z0-9_-]+")
SortKeys = list[str]  # the names of a page's sort keys (inside ServiceViewSet, `list` is its method)


def _plain_json(request: Request) -> bool:
    """Whether the response is DRF's plain JSON, which stored documents can be sent as."""
    return type(request.accepted_renderer) is JSONRenderer and request.accepted_media_type == JSON_MEDIA_TYPE


@lru_cache(maxsize=64)
def _url_ends(scheme_host: str, _script_prefix: str) -> tuple[str, str, str, str]:
    """A service URL's two ends around its slug, as `request.build_absolute_uri` makes the URL, and as the JSON string
    `{"url":"<before>` and `<after>",` around a slug: a plain slug (letters, digits, _ and -) needs no escaping inside,
    and json.dumps of each row's URL was a tenth of a page's CPU. Kept per host (ALLOWED_HOSTS bounds them) and script
    prefix (reverse() reads it)."""
    path = reverse("api:service-detail", kwargs={"slug": "__slug__"})
    before, _, after = iri_to_uri(scheme_host + path).partition("__slug__")
    return before, after, '{"url":' + json.dumps(before)[:-1], json.dumps(after)[1:] + ","


def documents_joined(request: Any, rows: Sequence[tuple[int, str, str | None]], *, many: bool = False) -> str:
    """The documents of (pk, slug, document) rows with each one's URL put in front; a document not stored yet
    (a service written by code that bypassed the model) is built on the spot."""
    missing = [pk for pk, _slug, document in rows if document is None]
    built = documents.render(missing, lock=False) if missing else {}
    # build_absolute_uri(path) is the scheme and host in front of the path: the same for every request to this host.
    before, after, head, tail = _url_ends(f"{request.scheme}://{request.get_host()}", get_script_prefix())
    parts = []
    for pk, slug, document in rows:
        text = document if document is not None else built[pk]
        if _PLAIN_SLUG.fullmatch(slug):
            parts.append(f"{head}{slug}{tail}{text[1:]}")
        else:
            parts.append(f'{{"url":{json.dumps(f"{before}{quote(slug)}{after}")},{text[1:]}')
    return f"[{','.join(parts)}]" if many else parts[0]


class _StandInRequest:
    """The little of a request that ServicePagination.window reads, for building a shape's statement."""

    def __init__(self, query_params: QueryDict) -> None:
        self.query_params = query_params

    @staticmethod
    def build_absolute_uri() -> str:
        return "http://stand-in/"


class ServiceViewSet(LookupMixin, viewsets.ModelViewSet):
    """Services in the catalog. Filters: owner, lifecycle, tier, system, tag, q (text: every word must match the
    start of a word of the name, slug or description, the last word as a prefix; when no service matches, the words
    are looked for as substrings; without an ordering, few matches are listed by relevance); ordering: name, owner,
    tier, lifecycle, updated (prefix - for descending)."""

    serializer_class = ServiceSerializer
    filterset_class = ServiceApiFilterSet
    pagination_class = ServicePagination
    permission_classes = [IsAuthenticated, ObjectActionPermission]
    object_perms = SERVICE_PERMS
    lookup_field = "slug"

    @classmethod
    def as_view(cls, actions: dict[str, str] | None = None, **initkwargs: Any) -> Callable[..., HttpResponseBase]:  # type: ignore[override]
        view = super().as_view(actions, **initkwargs)
        return _lean(view)

    def get_queryset(self) -> Any:
        return selectors.service_list_visible(user=self.request.user)

    def filter_queryset(self, queryset: Any) -> Any:
        """The filters; an owner, system or tag that names nothing is a 400 (checked here, before the query, except
        on the JSON list's fast path, which asks only when its page comes back empty)."""
        queryset = super().filter_queryset(queryset)
        if not getattr(self, "_references_checked_later", False):
            self._refuse_unknown_references()
        return queryset

    def _refuse_unknown_references(self) -> None:
        if errors := ServiceApiFilterSet.unknown_references(self.request.query_params):
            raise drf_exceptions.ValidationError(errors)

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
        """Pages are joined from the services' stored documents (catalog/documents.py) and sent as they are.

        With a shared cache (Redis, settings.CATALOG_API_CACHE) a page is also cached, as the bytes it is sent as,
        until the catalog next changes. Another renderer (the browsable API) or media type goes through DRF.
        """
        if not _plain_json(request):
            return super().list(request, *args, **kwargs)
        key = self._cached_list_key(request)
        if key is None:
            return HttpResponse(self._documents_page(request), content_type=JSON_MEDIA_TYPE)
        fetched, found = getattr(request, "throttle_prefetched", (None, None))
        made_for, fresh = catalog_cache.read([key], found=found if fetched == catalog_cache.prefetch([key]) else None)
        body = fresh.get(key)
        if body is None:
            body = self._documents_page(request)
            catalog_cache.write(key, made_for, body, timeout=CACHE_SECONDS)
        return HttpResponse(body, content_type=JSON_MEDIA_TYPE)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:  # type: ignore[override]
        """One service: its stored document, with its URL in front (one indexed query)."""
        slug = str(kwargs.get(self.lookup_field, ""))
        if not _plain_json(request) or "\x00" in slug:
            return super().retrieve(request, *args, **kwargs)
        response = _document_response(request, request.user, slug)
        if response is None:
            raise drf_exceptions.NotFound()
        return response

    @property
    def count_key(self) -> str | None:
        return ServiceFilterSet.count_key(self.request.query_params)

    def _documents_page(self, request: Request) -> bytes:
        """A page of the list as JSON bytes, from stored documents: ServicePagination's shape, without serializers."""
        paginator: ServicePagination = self.paginator  # type: ignore[assignment]
        size = paginator.get_page_size(request) or paginator.page_size
        window, names = self._window_by_shape(request, paginator, size) or self._window_built(request, paginator)
        fetched = window.fetched  # read with the count, in one statement
        rows = fetched if fetched is not None else list(window.rows.values_list(*self._fields(), *names))
        if not rows:  # nothing matched: perhaps because an owner, system or tag names nothing
            self._refuse_unknown_references()
        last = dict(zip(names, rows[-1][3:], strict=True)) if rows else None
        next_link, cursor = paginator.links(window, last, len(rows), size)
        head = json.dumps(
            {
                "count": window.count,
                "count_exact": window.count_exact,
                "next": next_link,
                "previous": window.previous,
                "next_cursor": cursor,
            },
            separators=(",", ":"),
        )
        results = documents_joined(request, [row[:3] for row in rows], many=True)
        return f'{head[:-1]},"results":{results}}}'.encode()

    @staticmethod
    def _fields() -> tuple[Any, ...]:
        # The document as a subquery, not a join: PostgreSQL evaluates it for the page's rows only, after the sort,
        # where a join read the document of every match that the sort saw (4,385 for a busy owner at 100,000).
        document = Subquery(ServiceDocument.objects.filter(service=OuterRef("pk")).values("document")[:1])
        return ("pk", "slug", document)

    def _window_built(self, request: Request, paginator: ServicePagination) -> tuple[Window, SortKeys]:
        """The page's window, built through the filter set and the queryset (the ordinary path)."""
        self._references_checked_later = True
        queryset = self.filter_queryset(self.get_queryset().prefetch_related(None))
        window = paginator.window(queryset, request, cached_count_key=self.count_key, values=self._fields())
        return window, [name for name in window.rows.query.annotations if name.startswith("_key")]

    def _window_by_shape(
        self, request: Request, paginator: ServicePagination, size: int
    ) -> tuple[Window, SortKeys] | None:
        """The page's window from the statement of its shape (catalog/api/statements.py), or None for a request
        that takes the ordinary path."""
        params = request.query_params
        if (settings.CATALOG_API_CACHE and self.count_key) or params.get("page") == "last":
            return None  # the count comes from the cache; the last page needs the count first
        cursor_mode = CURSOR_PARAM in params
        after = paginator.cursor_keys(request) if cursor_mode else None
        number = None if cursor_mode else paginator.page_number(request)
        shape = shape_of(params, number=number, size=size, after=after)
        if shape is None:
            return None
        statement = statements.get(shape, self._statement_learn)
        filled = statement.fill(shape.values) if statement is not None else None
        if statement is None or filled is None:
            return None
        if after is not None and len(after) != len(statement.names):
            paginator.cursor_refuse_order()
        # A search that matches many services is never a prepared statement: the planner must see its words to choose
        # between the name index and the full-text index. One that matches few has its tsquery as a parameter
        # (catalog/text_search.py), and is prepared: planning it cost more than running it.
        window = paginator.window_of(
            request, sql=statement.sql, params=filled, names=list(statement.names), keyset=statement.keyset,
            number=number, size=size, prepare=shape.search_mode in (None, text_search.RANKED),
            windowed=statement.windowed,
        )  # fmt: skip
        return window, list(statement.names)

    def _statement_learn(self, shape: Shape) -> Statement | None:
        """Build the page of `shape` with stand-ins for its free values, as the ordinary path would, and keep its
        statement if the stand-ins came through."""
        data, after = shape.stand_in_params(self.request.query_params)
        filterset = ServiceApiFilterSet(
            data=data, queryset=self.get_queryset().prefetch_related(None), request=self.request
        )
        filterset.search_answer = shape.search_answer()
        if not filterset.is_valid():
            return None  # the ordinary path says what is wrong
        stand_in_request = _StandInRequest(data)
        paginator: ServicePagination = self.paginator  # type: ignore[assignment]
        window = paginator.window(
            filterset.qs,
            stand_in_request,
            values=self._fields(),
            run=False,
            after=after,  # type: ignore[arg-type]
        )
        statement = window.statement
        if statement is None:
            return None
        names = [name for name in window.rows.query.annotations if name.startswith("_key")]
        return statement_learn(shape, *statement, names=names, keyset=window.keyset, windowed=window.windowed)

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


def _lean(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """The read by name and the list (`GET /api/v1/services/[<slug>/]`), answered without DRF's dispatch when a
    client asks in the ordinary way: plain JSON, a personal API token within its rate limit, and (by name) a service
    that exists. DRF's dispatch (its content negotiation, the authenticators, permission and throttle instances, the
    finished response's headers) cost as much CPU as the read by name itself. The lean answer does what that dispatch
    would: the same token check and count (accounts.authentication.token_check, which counts the request once), the
    same checks (a signed-in user may read every service; the view's permission and throttle classes are checked to
    be the ones this assumes, or there is no lean answer), the same view code for the list, and the same bytes and
    headers. Anything else (no token or a bad one, past the limit, another media type, a slug that names nothing, a
    filter the list refuses) goes to DRF's view, which reuses the token already checked and says what is wrong exactly
    as before."""
    cls: Any = getattr(view, "cls", None)
    action = (getattr(view, "actions", None) or {}).get("get")
    if cls is None or action not in ("retrieve", "list"):
        return view
    if cls.permission_classes != [IsAuthenticated, ObjectActionPermission]:
        return view
    if cls.throttle_classes != [ApiTokenRateThrottle] or cls.authentication_classes[0] is not ApiTokenAuthentication:
        return view
    headers = _response_headers(view)
    by_name = action == "retrieve"

    def read(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = None
        if request.method == "GET" and len(words := token_words(request)) == 2 and plain_json_asked(request):
            response = (_by_name_answer if by_name else _list_answer)(request, words[1], view, args, kwargs)
        if response is None:
            return view(request, *args, **kwargs)
        for name, value in headers.items():
            response[name] = value
        return response

    update_wrapper(read, view)  # cls, initkwargs, actions, csrf_exempt: what the router, the schema and Django read
    return read


def _viewset(view: Any, args: Any = (), kwargs: dict[str, Any] | None = None) -> Any:
    """The viewset instance a router's view function makes for a request, set up as that function sets it up."""
    instance = view.cls(**view.initkwargs)
    actions = dict(view.actions)
    if "get" in actions and "head" not in actions:
        actions["head"] = actions["get"]
    instance.action_map = actions
    for method, name in actions.items():
        setattr(instance, method, getattr(instance, name))
    instance.args, instance.kwargs = args, kwargs or {}
    return instance


def _response_headers(view: Any) -> dict[str, str]:
    """The headers DRF's dispatch adds to this view's responses (Allow, Vary)."""
    return dict(_viewset(view).default_response_headers)


def _token_lean(request: HttpRequest, presented: str, prefetch: list[str]) -> tuple[Any, Any]:
    """(the presented token, its count) when the request may be answered lean; (None, None) when DRF must answer.
    Counts the request."""
    token, counted = token_check(presented, prefetch=prefetch)
    request.token_checked = (token, counted)  # type: ignore[attr-defined]  # DRF's authentication reuses it
    if token is None or not counted_allows(counted):
        return None, None  # refused, past the limit, or a count the throttle takes itself
    request.user = token.user  # as DRF's authentication sets it: the request log names the user
    return token, counted


def _by_name_answer(
    request: HttpRequest, presented: str, view: Any, args: Any, kwargs: dict[str, Any]
) -> HttpResponseBase | None:
    """The read by name's lean answer (see `_lean`), or None for DRF's view to answer."""
    slug = str(kwargs.get("slug", ""))
    if not slug or "\x00" in slug:
        return None
    token, _counted = _token_lean(request, presented, [])
    if token is None:
        return None
    return _document_response(request, token.user, slug)


def _document_response(request: Any, user: Any, slug: str) -> HttpResponse | None:
    """The read by name's answer (one indexed query, the stored document with its URL in front), or None when no
    service has this slug."""
    row = selectors.service_document_visible(user=user, slug=slug)
    return HttpResponse(documents_joined(request, [row]), content_type=JSON_MEDIA_TYPE) if row else None


def _list_answer(
    request: HttpRequest, presented: str, view: Any, args: Any, kwargs: dict[str, Any]
) -> HttpResponseBase | None:
    """The list's lean answer (see `_lean`): the viewset's own `list`, on a request set up as DRF's dispatch would
    have set it up; None for DRF's view to answer (which then runs the list again, for the error it raises)."""
    viewset = _viewset(view, args, kwargs)
    viewset.action, viewset.format_kwarg = "list", None
    wrapped = Request(request, parser_context={"view": viewset, "args": args, "kwargs": kwargs})
    viewset.request = wrapped
    prefetch = viewset.throttle_prefetch(wrapped)
    token, counted = _token_lean(request, presented, prefetch)
    if token is None:
        return None
    wrapped.user, wrapped.auth = token.user, token
    if prefetch:
        wrapped.throttle_prefetched = (prefetch, counted[3])  # type: ignore[attr-defined]  # as the throttle leaves it
    wrapped.accepted_renderer, wrapped.accepted_media_type = _JSON_RENDERER, JSON_MEDIA_TYPE  # type: ignore[attr-defined]
    try:
        return viewset.list(wrapped)
    except Exception:  # noqa: BLE001 - DRF's view runs the list again and answers the error as it always has
        return None


_JSON_RENDERER = JSONRenderer()


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
