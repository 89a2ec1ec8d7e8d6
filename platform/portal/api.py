"""API plumbing shared by every app: pagination with a hard maximum page size, error mapping, staff writes."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from portal.errors import Conflict


class Pagination(PageNumberPagination):
    """`?page=N&page_size=M`; M is capped so that no client can ask for the whole table at once."""

    page_size = settings.API_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus Django's ValidationError from a service turned into field errors (400) and a
    service's Conflict into a 409 that names what is in the way."""
    if isinstance(exc, Conflict):
        return Response({"detail": exc.message, "existing": exc.existing_url or None}, status=409)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    return drf_exception_handler(exc, context)


class StaffWritePermission(BasePermission):
    """Anyone signed in may read; only platform admins (staff) may write."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.method in SAFE_METHODS or (request.user and request.user.is_staff))
