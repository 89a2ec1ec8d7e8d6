"""Catalog filters, shared by the HTML catalog page and the API so that both answer the same question."""

import copy
from typing import Any

import django_filters
from django.db.models import F, Q, QuerySet, Subquery
from django.db.models.functions import Lower
from django_filters.constants import EMPTY_VALUES

from catalog import cache as catalog_cache
from catalog import selectors, text_search
from catalog.models import Dependency, Service, System, Tag
from teams.models import Team


class CaseInsensitiveOrderingFilter(django_filters.OrderingFilter):
    """Names sort as people read them ("api gateway" before "Billing"), not by code point, where every capital comes
    before every lowercase letter (the databases here collate by code point: C.UTF-8, SQLite's BINARY)."""

    TEXT_FIELDS = ("name", "owner__name")
    # Oldest verification first: a service never verified comes before any verified one.
    NULLS_OLDEST = ("ownership__verified_at",)

    def get_ordering_value(self, param: str) -> Any:
        value = super().get_ordering_value(param)
        field = value.lstrip("-")
        if field in self.NULLS_OLDEST:
            return F(field).desc(nulls_last=True) if value.startswith("-") else F(field).asc(nulls_first=True)
        if field not in self.TEXT_FIELDS:
            return value
        return Lower(field).desc() if value.startswith("-") else Lower(field).asc()


class ServiceFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    owner = django_filters.ModelChoiceFilter(
        queryset=Team.objects.only("id", "slug", "name"), to_field_name="slug", label="Owner", empty_label="Any team"
    )
    lifecycle = django_filters.ChoiceFilter(choices=Service.Lifecycle.choices, empty_label="Any lifecycle")
    tier = django_filters.ChoiceFilter(choices=Service.Tier.choices, empty_label="Any tier")
    system = django_filters.ModelChoiceFilter(
        queryset=System.objects.only("id", "slug", "name"),
        to_field_name="slug",
        label="System",
        empty_label="Any system",
    )
    tag = django_filters.ModelChoiceFilter(
        queryset=Tag.objects.all(), to_field_name="name", field_name="tags", label="Tag", empty_label="Any tag"
    )
    stale = django_filters.ChoiceFilter(
        choices=[("yes", "Stale runbooks"), ("no", "No stale runbook")],
        empty_label="Any runbooks",
        method="filter_stale",
        label="Runbooks",
    )
    golden_path = django_filters.ChoiceFilter(
        choices=[("behind", "Behind its golden path"), ("current", "On the latest golden path")],
        empty_label="Any golden path",
        method="filter_golden_path",
        label="Golden path",
    )
    verified = django_filters.ChoiceFilter(
        choices=[
            ("due", "Verification due (past its period)"),
            ("90", "Not verified in 90 days"),
            ("180", "Not verified in 180 days"),
            ("365", "Not verified in a year"),
            ("never", "Never verified"),
            ("recent", "Verified within its period"),
            ("orphaned", "Orphaned"),
        ],
        empty_label="Any ownership",
        method="filter_verified",
        label="Ownership",
    )
    ordering = CaseInsensitiveOrderingFilter(
        fields=(
            ("name", "name"),
            ("owner__name", "owner"),
            ("tier", "tier"),
            ("lifecycle", "lifecycle"),
            ("updated_at", "updated"),
            ("ownership__verified_at", "verified"),
        ),
        label="Sort by",
    )

    class Meta:
        model = Service
        fields = ["q", "owner", "lifecycle", "tier", "system", "tag", "stale", "golden_path", "verified"]

    # Filters whose answer changes without a catalog write: with the clock (stale runbooks, verification age) or with
    # the golden paths on disk. Results filtered by them are never cached.
    UNCACHEABLE = ("stale", "golden_path", "verified")

    @classmethod
    def cacheable(cls, params: Any) -> bool:
        """Whether the catalog filtered by `params` (a QueryDict) changes only when the catalog does."""
        return not any(params.get(name) for name in cls.UNCACHEABLE)

    @classmethod
    def count_key(cls, params: Any) -> str | None:
        """A cache key for the number of services matching `params` (a QueryDict), or None when that number may
        change without a catalog write. Pages, page sizes, orderings and unknown parameters share the key. Every
        reader sees the same catalog (selectors.service_list_visible), so the key holds no user."""
        if not cls.cacheable(params):
            return None
        names = sorted(name for name in cls.base_filters if name != "ordering")
        return catalog_cache.entry_key("service-count", repr([(name, params.getlist(name)) for name in names]))

    # The relevance of each service to the search, when the list is ordered by it (see `search`).
    search_rank: Any = None
    # How the search is answered (text_search.answer: its mode, and a ranked search's tsquery), when the caller knows
    # it already: a kept statement's shape (catalog/api/statements.py) is built with stand-ins, which must be answered
    # as the real words are.
    search_answer: tuple[str, str | None] | None = None

    def search(self, queryset: QuerySet[Service], name: str, value: str) -> QuerySet[Service]:
        """Every word must match a word of the name, slug or description, the last one as a prefix; when none does,
        every word must appear in them as a substring. Listed by relevance when no order is asked for and few match.
        See catalog/text_search.py."""
        words = text_search.words_split(value)
        if not words:
            return queryset
        mode, query = self.search_answer or text_search.answer(words)
        if mode == text_search.SUBSTRING:
            return queryset.filter(text_search.substring(words))
        if mode == text_search.RANKED and query is not None:
            # Few matches: the tsquery made by the probe is a parameter, so that a kept statement of this shape can be
            # prepared. Many (or a short prefix): built from the words as a constant, which the planner needs to
            # choose between the name index and the full-text index.
            self.search_rank = text_search.rank(query)
            return queryset.filter(text_search.match_query(query))
        return queryset.filter(text_search.match(words))

    def filter_stale(self, queryset: QuerySet[Service], name: str, value: str) -> QuerySet[Service]:
        stale = selectors.stale_runbook_exists()
        return queryset.filter(stale if value == "yes" else ~stale)

    def filter_golden_path(self, queryset: QuerySet[Service], name: str, value: str) -> QuerySet[Service]:
        """Services made from a golden path that has a newer version than the one they were made from."""
        from scaffolder import registry  # the scaffolder builds on the catalog, not the other way round

        behind = Q(pk__in=[])
        for path in registry.golden_path_list():
            behind |= Q(golden_path=path.name) & ~Q(golden_path_version=path.version)
        made = queryset.filter(golden_path__isnull=False).exclude(golden_path="")
        return made.filter(behind) if value == "behind" else made.exclude(behind)

    def filter_verified(self, queryset: QuerySet[Service], name: str, value: str) -> QuerySet[Service]:
        """By the age of the ownership verification that ownership reviews record (docs/reviews.md)."""
        from reviews import selectors as reviews  # reviews build on the catalog, not the other way round

        return queryset.filter(reviews.verification_q(value))

    @property
    def qs(self) -> QuerySet[Service]:
        queryset = super().qs
        if not getattr(self.form, "cleaned_data", {}).get("ordering"):
            first = [self.search_rank.desc()] if self.search_rank is not None else []
            queryset = queryset.order_by(*first, Lower("name"), "pk")
        else:
            queryset = queryset.order_by(*queryset.query.order_by, "pk")  # a stable order for pagination
        return queryset


class ReferenceFilter(django_filters.CharFilter):
    """A ModelChoiceFilter's question (`owner=<slug>`) asked inside the filtered query, as a subquery, instead of by a
    lookup before it: one round trip fewer for every filtered page. Whether the value names anything is checked only
    when nothing matched (`unknown`), where an unknown value gets the field error ModelChoiceFilter gives."""

    def __init__(self, *args: Any, model: type, to_field_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Not `model`: a FilterSet sets each filter's `model` to its own (Service).
        self.target_model, self.to_field_name = model, to_field_name

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value in EMPTY_VALUES:
            return qs
        found = self.target_model._default_manager.filter(**{self.to_field_name: value}).order_by().values("pk")[:1]  # type: ignore[attr-defined]
        return qs.filter(**{self.field_name: Subquery(found)})

    def unknown(self, value: str) -> bool:
        return not self.target_model._default_manager.filter(**{self.to_field_name: value}).exists()  # type: ignore[attr-defined]


class _SharedFields(dict[str, Any]):
    """A form class's fields, shared by its forms instead of deep-copied into each one (Django's default)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return dict(self)


class ServiceApiFilterSet(ServiceFilterSet):
    """The API's filters: the catalog's, with the owner, system and tag looked up inside the page's statement (see
    ReferenceFilter); `refuse_unknown` gives their field errors. The pages, campaigns and scorecards keep the
    ModelChoiceFilters, whose form fields validate on their own.

    Built cheaply, as every API list request builds one: django-filter deep-copies every filter and builds a form
    class with new fields per FilterSet, and Django deep-copies the form's fields again, which was a third of the
    CPU of a page of stored documents. Here each filter is copied shallowly and the form class is built once per
    class, its fields shared by every form: these forms are only validated (which reads a field, never changes it),
    never rendered, and none of these filters is a ModelChoiceFilter, whose field holds a per-request queryset.
    """

    owner = ReferenceFilter(model=Team, to_field_name="slug", field_name="owner", label="Owner")
    system = ReferenceFilter(model=System, to_field_name="slug", field_name="system", label="System")
    tag = ReferenceFilter(model=Tag, to_field_name="name", field_name="tags", label="Tag")

    INVALID_CHOICE = "Select a valid choice. That choice is not one of the available choices."

    def __init__(
        self, data: Any = None, queryset: Any = None, *, request: Any = None, prefix: str | None = None
    ) -> None:
        base: dict[str, Any] = type(self).base_filters
        self.__dict__["base_filters"] = {}  # nothing for django-filter's deep copy to do: the filters are copied below
        super().__init__(data, queryset, request=request, prefix=prefix)
        del self.__dict__["base_filters"]
        model = self.queryset.model
        for name, spec in base.items():
            clone = copy.copy(spec)
            if spec.method is not None:
                clone.method = spec.method  # binds the filter's method to the copy, not to the class's filter
            clone.model, clone.parent = model, self
            self.filters[name] = clone

    def get_form_class(self) -> Any:
        cls = type(self)
        form_class: Any = cls.__dict__.get("_form_class")
        if form_class is None:
            fields = {name: spec.field for name, spec in cls.base_filters.items()}
            form_class = type(f"{cls.__name__}Form", (self._meta.form,), fields)
            form_class.base_fields = _SharedFields(form_class.base_fields)
            cls._form_class = form_class  # type: ignore[attr-defined]
        return form_class

    @classmethod
    def unknown_references(cls, params: Any) -> dict[str, list[str]]:
        """Field errors for owner, system and tag values in `params` (a QueryDict) that name nothing; one query each
        given, so only asked when a page came back empty (or off the fast path)."""
        errors = {}
        for name, spec in cls.base_filters.items():
            value = params.get(name)
            if isinstance(spec, ReferenceFilter) and value and "\x00" not in value and spec.unknown(value):
                errors[name] = [cls.INVALID_CHOICE]
        return errors


class CatalogPageFilterSet(ServiceFilterSet):
    """The catalog page's filters: the API's, and decommissioned services are left out unless asked for. They are a
    record kept for history, not services anyone runs, and the everyday list is for finding the ones that run. The
    API keeps answering with every service, as its clients expect."""

    retired = django_filters.ChoiceFilter(
        choices=[("show", "Include decommissioned"), ("only", "Only decommissioned")],
        empty_label="Hide decommissioned",
        method="filter_retired",
        label="Decommissioned",
    )

    class Meta(ServiceFilterSet.Meta):
        fields = [*ServiceFilterSet.Meta.fields, "retired"]

    def filter_retired(self, queryset: QuerySet[Service], name: str, value: str) -> QuerySet[Service]:
        return queryset.filter(lifecycle=Service.Lifecycle.DECOMMISSIONED) if value == "only" else queryset

    @property
    def qs(self) -> QuerySet[Service]:
        queryset = super().qs
        data = getattr(self.form, "cleaned_data", {})
        if not data.get("retired") and data.get("lifecycle") != Service.Lifecycle.DECOMMISSIONED:
            queryset = queryset.exclude(lifecycle=Service.Lifecycle.DECOMMISSIONED)
        return queryset


class SystemFilterSet(django_filters.FilterSet):
    owner = django_filters.CharFilter(field_name="owner__slug")

    class Meta:
        model = System
        fields = ["owner"]


class DependencyFilterSet(django_filters.FilterSet):
    source = django_filters.CharFilter(field_name="source__slug")
    target = django_filters.CharFilter(field_name="target__slug")

    class Meta:
        model = Dependency
        fields = ["source", "target", "kind"]
