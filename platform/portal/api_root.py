"""`/api/v1/`: the API's entry point, a link to every collection it serves."""

from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

NAMESPACE = "api"


def _list_names(patterns: list[Any]) -> list[str]:
    """The names of the collection routes (`<basename>-list`, as DRF's routers name them) among `patterns`."""
    names: list[str] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            names += _list_names(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and pattern.name and pattern.name.endswith("-list"):
            names.append(pattern.name)
    return names


class ApiRootView(APIView):
    """Every collection of the API, by its path under `/api/v1/`, with its address; and the schema and its docs."""

    @extend_schema(
        operation_id="api_root",
        tags=["api"],
        responses={
            200: OpenApiResponse(
                response={"type": "object", "additionalProperties": {"type": "string", "format": "uri"}},
                description="The address of each collection, keyed by its path under /api/v1/.",
            )
        },
    )
    def get(self, request: Request) -> Response:
        root = reverse(f"{NAMESPACE}:root")
        _prefix, resolver = get_resolver().namespace_dict[NAMESPACE]
        links: dict[str, str] = {}
        for name in sorted(set(_list_names(resolver.url_patterns))):
            path = reverse(f"{NAMESPACE}:{name}")
            links[path.removeprefix(root).strip("/")] = request.build_absolute_uri(path)
        links["schema"] = request.build_absolute_uri(reverse("api-schema"))
        links["docs"] = request.build_absolute_uri(reverse("api-docs"))
        return Response(dict(sorted(links.items())))
