"""A Django Paginator whose row count can come from elsewhere (a cache) instead of a COUNT(*) per page."""

from collections.abc import Callable
from typing import Any

from django.core.paginator import Paginator
from django.utils.functional import cached_property


class CountedPaginator(Paginator):
    """`count` is a function returning the number of rows in `object_list`, e.g. one that reads a cache."""

    def __init__(self, object_list: Any, per_page: int, *args: Any, count: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self._count = count

    @cached_property
    def count(self) -> int:
        return self._count()
