"""Writes to the catalog. Each function checks domain rules, grants ownership and records an audit event."""

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from guardian.shortcuts import assign_perm, remove_perm

from audit import services as audit
from catalog import selectors
from catalog.models import Dependency, EntitySource, Service, System, Tag
from catalog.permissions import SERVICE_OWNER_PERMS, SYSTEM_OWNER_PERMS
from teams.models import Membership, Team

SERVICE_FIELDS = [
    "slug",
    "name",
    "description",
    "owner",
    "system",
    "lifecycle",
    "tier",
    "language",
    "repository_url",
    "docs_url",
    "dashboard_url",
    "chat_channel",
    "on_call_url",
    "golden_path",
    "golden_path_version",
    "tags",
]
SERVICE_EDITABLE = set(SERVICE_FIELDS) - {"slug", "owner"}
SYSTEM_FIELDS = ["slug", "name", "description", "owner"]


def _require_member(*, user: User | None, team: Team, action: str) -> None:
    """Only members of a team (or staff) may make it the owner of something."""
    if user is None or user.is_staff:  # None: the system itself, e.g. the demo loader
        return
    if not Membership.objects.filter(team=team, user=user).exists():
        raise PermissionDenied(f"You can only {action} for a team you belong to; you are not in {team}.")


def source_owner(obj: Service | System) -> EntitySource | None:
    """The import source that owns this entity's fields, or None when it was made (or left behind) in Runway."""
    record = selectors.entity_source_for(obj=obj)
    return record if record is not None and record.missing_since is None else None


def _refuse_if_source_owned(obj: Service | System, field: str) -> None:
    record = source_owner(obj)
    if record is not None:
        raise ValidationError(
            {
                field: f"{obj} is managed by catalog source “{record.source.name}” ({record.path}); "
                "change it there, or the next sync would undo the change."
            }
        )


def _tags_set(service: Service, names: Iterable[str]) -> None:
    wanted = sorted({name.strip().lower() for name in names if name.strip()})
    for name in wanted:
        Tag(name=name).clean_fields()  # a clear error for a malformed tag, before anything is written
    existing = {tag.name: tag for tag in Tag.objects.filter(name__in=wanted)}
    missing = [Tag(name=name) for name in wanted if name not in existing]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {tag.name: tag for tag in Tag.objects.filter(name__in=wanted)}
    service.tags.set([existing[name] for name in wanted])


def _grant(perms: list[str], team: Team, obj: Service | System) -> None:
    for perm in perms:
        assign_perm(perm, team.group, obj)


def _revoke(perms: list[str], team: Team, obj: Service | System) -> None:
    for perm in perms:
        remove_perm(perm, team.group, obj)


@transaction.atomic
def service_create(
    *, created_by: User | None, owner: Team, slug: str, name: str, tags: Iterable[str] = (), **fields: object
) -> Service:
    """Register a service owned by `owner`; the team's group gets change, deploy and decommission on it."""
    _require_member(user=created_by, team=owner, action="register a service")
    unknown = set(fields) - SERVICE_EDITABLE
    if unknown:
        raise ValueError(f"service_create does not take {sorted(unknown)}")
    service = Service(owner=owner, slug=slug, name=name, **fields)
    service.full_clean()
    try:
        with transaction.atomic():
            service.save()
    except IntegrityError as error:  # a concurrent create won the race for the slug
        raise ValidationError({"slug": "A service with this slug already exists."}) from error
    _tags_set(service, tags)
    _grant(SERVICE_OWNER_PERMS, owner, service)
    audit.event_record(
        actor=created_by,
        action="service.created",
        target=service,
        service_id=service.pk,
        after=audit.snapshot(service, fields=SERVICE_FIELDS),
    )
    return service


def _refuse_retirement_edits(service: Service, fields: dict[str, object]) -> None:
    """Retirement has its own workflow (approval, stopping, archiving); an edit neither starts nor undoes it."""
    if service.lifecycle == Service.Lifecycle.DECOMMISSIONED:
        raise ValidationError(f"{service.slug} is decommissioned: its record is read-only.")
    if service.moves_into_or_out_of_retirement(str(fields.get("lifecycle", service.lifecycle))):
        raise ValidationError(
            {"lifecycle": ["Retiring a service goes through its decommission workflow (Decommission on its page)."]}
        )


@transaction.atomic
def service_update(*, service: Service, updated_by: User, **fields: object) -> Service:
    """Change a service's descriptive fields; ownership moves only through service_transfer."""
    unknown = set(fields) - SERVICE_EDITABLE
    if unknown:
        raise ValueError(f"service_update cannot change {sorted(unknown)}; use service_transfer for the owner")
    service = Service.objects.select_for_update().get(pk=service.pk)
    _refuse_if_source_owned(service, next(iter(fields), "__all__"))
    _refuse_retirement_edits(service, fields)
    before = audit.snapshot(service, fields=SERVICE_FIELDS)
    tags = fields.pop("tags", None)
    for name, value in fields.items():
        setattr(service, name, value)
    service.full_clean()
    service.save()
    if tags is not None:
        _tags_set(service, tags)  # type: ignore[arg-type]
    after = audit.snapshot(service, fields=SERVICE_FIELDS)
    if after != before:
        changed = [key for key in SERVICE_FIELDS if before[key] != after[key]]
        audit.event_record(
            actor=updated_by,
            action="service.updated",
            target=service,
            service_id=service.pk,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return service


@transaction.atomic
def service_transfer(*, service: Service, new_owner: Team, transferred_by: User, note: str = "") -> Service:
    """Move a service to another team: its permissions move from the old team's group to the new one's."""
    service = Service.objects.select_for_update().select_related("owner").get(pk=service.pk)
    old_owner = service.owner
    if old_owner.pk == new_owner.pk:
        raise ValidationError({"new_owner": f"{new_owner} already owns {service}."})
    _refuse_if_source_owned(service, "new_owner")
    _revoke(SERVICE_OWNER_PERMS, old_owner, service)
    _grant(SERVICE_OWNER_PERMS, new_owner, service)
    service.owner = new_owner
    service.save(update_fields=["owner", "updated_at"])
    audit.event_record(
        actor=transferred_by,
        action="service.transferred",
        target=service,
        service_id=service.pk,
        before={"owner": old_owner.slug},
        after={"owner": new_owner.slug, "note": note[:500]},
    )
    return service


@transaction.atomic
def system_create(*, created_by: User | None, owner: Team, slug: str, name: str, description: str = "") -> System:
    """Register a system owned by `owner`; the team's group gets its owner permissions."""
    _require_member(user=created_by, team=owner, action="register a system")
    system = System(owner=owner, slug=slug, name=name, description=description)
    system.full_clean()
    system.save()
    _grant(SYSTEM_OWNER_PERMS, owner, system)
    audit.event_record(
        actor=created_by, action="system.created", target=system, after=audit.snapshot(system, fields=SYSTEM_FIELDS)
    )
    return system


@transaction.atomic
def system_update(*, system: System, updated_by: User, name: str, description: str) -> System:
    before = audit.snapshot(system, fields=SYSTEM_FIELDS)
    system.name, system.description = name, description
    system.full_clean()
    system.save()
    audit.event_record(
        actor=updated_by,
        action="system.updated",
        target=system,
        before=before,
        after=audit.snapshot(system, fields=SYSTEM_FIELDS),
    )
    return system


@transaction.atomic
def system_transfer(*, system: System, new_owner: Team, transferred_by: User) -> System:
    """Move a system (not its services, which keep their own owners) to another team."""
    system = System.objects.select_for_update().select_related("owner").get(pk=system.pk)
    old_owner = system.owner
    if old_owner.pk == new_owner.pk:
        raise ValidationError({"new_owner": f"{new_owner} already owns {system}."})
    _revoke(SYSTEM_OWNER_PERMS, old_owner, system)
    _grant(SYSTEM_OWNER_PERMS, new_owner, system)
    system.owner = new_owner
    system.save(update_fields=["owner", "updated_at"])
    audit.event_record(
        actor=transferred_by,
        action="system.transferred",
        target=system,
        before={"owner": old_owner.slug},
        after={"owner": new_owner.slug},
    )
    return system


@transaction.atomic
def dependency_add(
    *, source: Service, target: Service, kind: str = Dependency.Kind.RUNTIME, added_by: User | None
) -> Dependency:
    """Record that `source` depends on `target`; a cycle is allowed, a self-dependency or duplicate is not."""
    if source.pk == target.pk:
        raise ValidationError({"target": "A service cannot depend on itself."})
    _refuse_if_source_owned(source, "target")
    if Dependency.objects.filter(source=source, target=target, kind=kind).exists():
        raise ValidationError({"target": f"{source} already has a {kind} dependency on {target}."})
    dependency = Dependency(source=source, target=target, kind=kind)
    dependency.full_clean(validate_constraints=False)
    dependency.save()
    audit.event_record(
        actor=added_by,
        action="dependency.added",
        target=dependency,
        service_id=source.pk,
        after={"source": source.slug, "target": target.slug, "kind": kind},
    )
    return dependency


@transaction.atomic
def dependency_remove(*, dependency: Dependency, removed_by: User) -> None:
    _refuse_if_source_owned(dependency.source, "target")
    audit.event_record(
        actor=removed_by,
        action="dependency.removed",
        target=dependency,
        service_id=dependency.source_id,
        before={"source": dependency.source.slug, "target": dependency.target.slug, "kind": dependency.kind},
    )
    dependency.delete()


@transaction.atomic
def service_delete(*, service: Service, deleted_by: User) -> None:
    """Remove a service registered by mistake (platform admins only); retiring a real one is decommissioning."""
    audit.event_record(
        actor=deleted_by,
        action="service.deleted",
        target=service,
        service_id=service.pk,
        before=audit.snapshot(service, fields=SERVICE_FIELDS),
    )
    service.delete()
