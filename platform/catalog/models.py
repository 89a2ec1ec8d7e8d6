"""The service catalog: systems, services, their tags and the dependencies between them."""

from typing import Any

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.urls import reverse

from teams.models import Team

slug_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z",  # \Z, not $: $ also matches before a trailing newline
    "Use lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)


class Tag(models.Model):
    """A free label on services, such as `python` or `pci`."""

    name = models.CharField(max_length=50, unique=True, validators=[slug_validator])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class System(models.Model):
    """A group of services that together provide one capability, owned by one team."""

    slug = models.SlugField(max_length=100, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=5000)
    owner = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="systems")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("deploy_system", "Can deploy the system's services"),
            ("decommission_system", "Can decommission the system"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("catalog:system-detail", kwargs={"slug": self.slug})


class Service(models.Model):
    """A deployable piece of software with exactly one owning team; its team's group holds its permissions."""

    class Lifecycle(models.TextChoices):
        EXPERIMENTAL = "experimental", "Experimental"
        PRODUCTION = "production", "Production"
        DEPRECATED = "deprecated", "Deprecated"
        DECOMMISSIONING = "decommissioning", "Decommissioning"
        DECOMMISSIONED = "decommissioned", "Decommissioned"

    # Set only by the decommission workflow (approval, stopping, archiving, revoking), never by an edit or an import.
    RETIRING = (Lifecycle.DECOMMISSIONING, Lifecycle.DECOMMISSIONED)

    class Tier(models.IntegerChoices):
        CRITICAL = 1, "Tier 1 — critical"
        HIGH = 2, "Tier 2 — high"
        MEDIUM = 3, "Tier 3 — medium"
        LOW = 4, "Tier 4 — low"

    slug = models.SlugField(max_length=100, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=5000)
    owner = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    system = models.ForeignKey(System, null=True, blank=True, on_delete=models.SET_NULL, related_name="services")
    lifecycle = models.CharField(max_length=20, choices=Lifecycle.choices, default=Lifecycle.EXPERIMENTAL)
    component_type = models.CharField(
        max_length=40, default="service", validators=[slug_validator], help_text="service, website, library..."
    )
    tier = models.PositiveSmallIntegerField(
        choices=Tier.choices, default=Tier.MEDIUM, validators=[MinValueValidator(1), MaxValueValidator(4)]
    )
    language = models.CharField(max_length=40, blank=True)
    repository_url = models.URLField(max_length=500, blank=True, verbose_name="repository URL")
    docs_url = models.URLField(max_length=500, blank=True, verbose_name="documentation")
    dashboard_url = models.URLField(max_length=500, blank=True, verbose_name="dashboard")
    chat_channel = models.CharField(max_length=100, blank=True)
    on_call_url = models.URLField(max_length=500, blank=True, verbose_name="on-call link")
    tags = models.ManyToManyField(Tag, blank=True, related_name="services")
    resources: "models.ManyToManyField[Resource, Any]" = models.ManyToManyField(
        "Resource", blank=True, related_name="dependents"
    )
    # Extra links beyond the named ones ([{"title", "url", "type"}]) and annotations kept from a descriptor.
    links = models.JSONField(default=list, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    golden_path = models.CharField(max_length=100, blank=True, null=True)
    golden_path_version = models.CharField(max_length=40, blank=True, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("deploy_service", "Can deploy the service"),
            ("decommission_service", "Can decommission the service"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(tier__gte=1, tier__lte=4), name="service_tier_1_to_4"),
        ]
        # One per sort order of the catalog page (each ends in id, as the page orders by it last), so that a
        # page of 50 is an index scan rather than a sort of the whole catalog.
        indexes = [
            # Names sort as people read them, whatever their case (the page orders by Lower("name"), then id).
            # Each name-ordered index also holds the name and slug (INCLUDE), so that a page of 50 is read from the
            # index alone (an index-only scan), whatever the planner guesses of a filter value's frequency: for a busy
            # owner it guessed the average and sorted all 458 matches' rows from the table instead.
            models.Index(Lower("name"), "id", name="service_order_name_ci", include=["name", "slug"]),
            models.Index(fields=["tier", "id"], name="service_order_tier"),
            models.Index(fields=["lifecycle", "id"], name="service_order_lifecycle"),
            models.Index(fields=["updated_at", "id"], name="service_order_updated"),
            # The filters people and API clients use most, each in the default (name) order, so that a filtered page
            # of 50 reads 50 index entries whatever the catalog's size.
            models.Index("owner", Lower("name"), "id", name="service_owner_name", include=["name", "slug"]),
            models.Index("system", Lower("name"), "id", name="service_system_name", include=["name", "slug"]),
            models.Index(
                "lifecycle", "tier", Lower("name"), "id", name="service_lifecycle_tier_name", include=["name", "slug"]
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saves the row and rebuilds its stored document in one transaction: both change, or neither does."""
        from catalog import documents

        with transaction.atomic():
            super().save(*args, **kwargs)
            documents.refresh([self.pk])

    def get_absolute_url(self) -> str:
        return reverse("catalog:service-detail", kwargs={"slug": self.slug})

    def moves_into_or_out_of_retirement(self, lifecycle: str) -> bool:
        """Whether changing to `lifecycle` would start or undo a retirement, which only its workflow may do."""
        return lifecycle != self.lifecycle and (lifecycle in self.RETIRING or self.lifecycle in self.RETIRING)


class ServiceDocument(models.Model):
    """A service as the API sends it (catalog/documents.py), written in the same transaction as the service.

    A table of its own rather than a column: rewriting a document then touches one narrow row and one index, not the
    service row with its trigram and sort indexes."""

    service = models.OneToOneField(Service, on_delete=models.CASCADE, primary_key=True, related_name="stored_document")
    document = models.TextField()
    version = models.PositiveSmallIntegerField()

    def __str__(self) -> str:
        return f"document of service {self.pk}"


class Dependency(models.Model):
    """`source` depends on `target`. Cycles are allowed (real systems have them) and shown on the service page."""

    class Kind(models.TextChoices):
        RUNTIME = "runtime", "Runtime"
        BUILD = "build", "Build"
        DATA = "data", "Data"

    source = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="dependencies")
    target = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="dependents")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RUNTIME)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["source__name", "target__name"]
        verbose_name_plural = "dependencies"
        constraints = [
            models.UniqueConstraint(fields=["source", "target", "kind"], name="dependency_unique_edge"),
            models.CheckConstraint(
                condition=~Q(source=F("target")),
                name="dependency_not_self",
                violation_error_message="A service cannot depend on itself.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} → {self.target} ({self.kind})"


class Api(models.Model):
    """An interface a service provides (OpenAPI, gRPC, AsyncAPI, GraphQL), with its definition text."""

    class Type(models.TextChoices):
        OPENAPI = "openapi", "OpenAPI"
        GRPC = "grpc", "gRPC"
        ASYNCAPI = "asyncapi", "AsyncAPI"
        GRAPHQL = "graphql", "GraphQL"
        OTHER = "other", "Other"

    slug = models.SlugField(max_length=100, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=5000)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.OPENAPI)
    lifecycle = models.CharField(max_length=20, choices=Service.Lifecycle.choices, default=Service.Lifecycle.PRODUCTION)
    owner = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="apis")
    system = models.ForeignKey(System, null=True, blank=True, on_delete=models.SET_NULL, related_name="apis")
    definition = models.TextField(blank=True, max_length=1_000_000)
    providers = models.ManyToManyField(Service, blank=True, related_name="provided_apis")
    consumers = models.ManyToManyField(Service, blank=True, related_name="consumed_apis")
    annotations = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API"

    def __str__(self) -> str:
        return self.name


class Resource(models.Model):
    """Infrastructure a service needs: a database, a queue, a bucket."""

    slug = models.SlugField(max_length=100, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=5000)
    type = models.CharField(max_length=40, blank=True)
    owner = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="resources")
    system = models.ForeignKey(System, null=True, blank=True, on_delete=models.SET_NULL, related_name="resources")
    annotations = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CatalogSource(models.Model):
    """A place descriptors are imported from: a folder on disk, an uploaded archive, or the API."""

    name = models.CharField(max_length=200, unique=True)
    location = models.CharField(max_length=1000, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_report = models.JSONField(default=dict, blank=True)
    # Digest of each descriptor file (with its folder's docs) whose entities all imported cleanly last time:
    # an unchanged file is not even parsed again.
    file_digests = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.name


class EntitySource(models.Model):
    """Where one catalog entity came from, keyed like Backstage on kind + namespace + name.

    `content_hash` covers the descriptor and its docs, so that re-importing an unchanged tree writes nothing.
    An entity gone from its source keeps its row with `missing_since` set; it is flagged, never deleted.
    """

    kind = models.CharField(max_length=20)
    namespace = models.CharField(max_length=63, default="default")
    name = models.CharField(max_length=100)
    source = models.ForeignKey(CatalogSource, on_delete=models.CASCADE, related_name="entities")
    path = models.CharField(max_length=1000)
    document_index = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    synced_at = models.DateTimeField()
    missing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "namespace", "name"], name="entity_source_unique_ref"),
        ]
        indexes = [models.Index(fields=["content_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.kind.lower()}:{self.namespace}/{self.name}"


class UnresolvedRelation(models.Model):
    """A relation an imported entity declares to one not (yet) in the catalog, as Backstage keeps a dangling one.

    The entity imports without it; each later import makes the relation once its target exists and deletes this row.
    """

    class Relation(models.TextChoices):
        DEPENDS_ON = "dependsOn", "depends on"
        PROVIDES_APIS = "providesApis", "provides"
        CONSUMES_APIS = "consumesApis", "consumes"
        SYSTEM = "system", "part of"

    entity = models.ForeignKey(EntitySource, on_delete=models.CASCADE, related_name="unresolved")
    relation = models.CharField(max_length=20, choices=Relation.choices)
    target_kind = models.CharField(max_length=20)  # as in references: component, resource, api, system
    target_namespace = models.CharField(max_length=63, default="default")
    target_name = models.CharField(max_length=100)
    # For a dependency on a component: runtime, build or data (runway.dev/dependency-kinds).
    dependency_kind = models.CharField(max_length=10, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["relation", "target_kind", "target_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["entity", "relation", "target_kind", "target_namespace", "target_name"],
                name="unresolved_relation_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.relation} {self.target_ref}"

    @property
    def target_ref(self) -> str:
        prefix = "" if self.target_namespace == "default" else f"{self.target_namespace}/"
        return f"{self.target_kind}:{prefix}{self.target_name}"


class ImportRun(models.Model):
    """One uploaded catalog archive and its import, run by a worker; the report is kept for the page and API."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    source_name = models.CharField(max_length=200)
    filename = models.CharField(max_length=255)
    archive_path = models.CharField(max_length=1000)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import of {self.filename} as {self.source_name}"

    def get_absolute_url(self) -> str:
        return reverse("catalog:import-detail", kwargs={"pk": self.pk})

    @property
    def is_done(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)
