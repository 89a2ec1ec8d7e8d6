"""Backstage-compatible descriptors (`backstage.io/v1alpha1`): reading one document, and writing one back.

`document_parse` checks a document's shape and turns it into an `Entity` whose `fields` are Runway's own field
names and whose `refs` are the entity references still to resolve. `*_document` functions do the reverse for
export. The field mapping lives only here, so that export then import gives the same catalog.
"""

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from catalog.models import Api, Resource, Service, System, Tag
from portal.validators import bidi_controls_refuse
from teams.models import Team

API_VERSIONS = ("backstage.io/v1alpha1", "backstage.io/v1beta1")
KINDS = ("Group", "User", "System", "Resource", "API", "Component")
# Relations an entity may declare before their target is in the catalog (Backstage keeps them dangling); an owner or a
# parent team must exist.
SOFT_RELATIONS = ("dependsOn", "providesApis", "consumesApis", "system")
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,98}[a-z0-9])?$")
NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
REF = re.compile(r"^(?:(?P<kind>[A-Za-z]+):)?(?:(?P<namespace>[a-z0-9-]+)/)?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)$")

# Runway's own annotations (see docs/catalog-as-code.md); every other annotation is kept as it is.
TIER, LANGUAGE, CHAT, ON_CALL, LEADS, DEPENDENCY_KINDS = (
    "runway.dev/tier",
    "runway.dev/language",
    "runway.dev/chat-channel",
    "runway.dev/on-call",
    "runway.dev/leads",
    "runway.dev/dependency-kinds",
)
LINK_FIELDS = {
    "repository": "repository_url",
    "docs": "docs_url",
    "dashboard": "dashboard_url",
    "on-call": "on_call_url",
}
LIFECYCLES = {choice.value for choice in Service.Lifecycle}
API_TYPES = {choice.value for choice in Api.Type}


class DescriptorError(ValueError):
    """One problem with one document: `field` is the descriptor path (e.g. spec.owner) when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Ref:
    kind: str  # lower case: group, user, system, component, api, resource
    namespace: str
    name: str

    def __str__(self) -> str:
        prefix = "" if self.namespace == "default" else f"{self.namespace}/"
        return f"{self.kind}:{prefix}{self.name}"


@dataclass
class Entity:
    """One parsed document, with its Runway fields and the references it makes."""

    kind: str
    namespace: str
    name: str
    path: str
    index: int
    fields: dict[str, Any]
    refs: dict[str, list[Ref]]
    content_hash: str
    docs: list[tuple[str, str]] = field(default_factory=list)  # (relative path, text) of runbooks and ADRs
    # path → techdocs.files.ParsedRunbook / ParsedADR, or None when it could not be read; filled when the docs are
    # checked, so that writing them does not parse them again.
    parsed_docs: dict[str, Any] = field(default_factory=dict)
    # (spec key, reference) of relations whose target is not in the catalog or this import: kept as unresolved.
    unresolved: list[tuple[str, "Ref"]] = field(default_factory=list)

    @property
    def ref(self) -> Ref:
        return Ref(self.kind.lower(), self.namespace, self.name)


def ref_parse(value: Any, *, default_kind: str, field_name: str) -> Ref:
    """Parse `[kind:][namespace/]name`; the kind defaults to what the field implies (owner → group)."""
    match = REF.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if not match:
        raise DescriptorError(f"{value!r} is not an entity reference like group:payments.", field_name)
    kind = (match.group("kind") or default_kind).lower()
    namespace, name = match.group("namespace") or "default", match.group("name").lower()
    # As long as the names and namespaces of entities (and their columns) may be.
    if len(name) > 100 or len(namespace) > 63:
        raise DescriptorError(f"{value[:120]!r}: names are at most 100 characters, namespaces 63.", field_name)
    return Ref(kind, namespace, name)


def _refs(spec: dict[str, Any], key: str, default_kind: str, allowed: tuple[str, ...]) -> list[Ref]:
    values = spec.get(key) or []
    if not isinstance(values, list):
        raise DescriptorError("must be a list of entity references.", f"spec.{key}")
    refs = []
    for value in values:
        ref = ref_parse(value, default_kind=default_kind, field_name=f"spec.{key}")
        if ref.kind not in allowed:
            raise DescriptorError(f"{value!r} must refer to a {' or '.join(allowed)}.", f"spec.{key}")
        refs.append(ref)
    return refs


def _one_ref(spec: dict[str, Any], key: str, default_kind: str, *, required: bool) -> list[Ref]:
    if spec.get(key) in (None, ""):
        if required:
            raise DescriptorError(f"spec.{key} is required.", f"spec.{key}")
        return []
    ref = ref_parse(spec[key], default_kind=default_kind, field_name=f"spec.{key}")
    if ref.kind != default_kind:
        raise DescriptorError(f"{spec[key]!r} must refer to a {default_kind}.", f"spec.{key}")
    return [ref]


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise DescriptorError("must be a string.", where)
    return str(value)


@functools.cache
def _field_names(model: type) -> tuple[str, ...]:
    return tuple(f.name for f in model._meta.concrete_fields)  # type: ignore[attr-defined]


def _validate(model: type, fields: dict[str, Any], paths: dict[str, str]) -> None:
    """Run the model's own field validation, reporting errors under descriptor paths."""
    names = _field_names(model)
    plain = {k: v for k, v in fields.items() if k in names}
    try:
        model(**plain).clean_fields(exclude=[name for name in names if name not in plain])
    except ValidationError as error:
        name, messages = next(iter(error.message_dict.items()))
        raise DescriptorError(messages[0], paths.get(name, name)) from error


@functools.lru_cache(maxsize=4096)
def _tag_problem(tag: str) -> tuple[str, str] | None:
    """A tag name's validation (message, descriptor path), once per name: a catalog reuses a few dozen tags."""
    try:
        _validate(Tag, {"name": tag}, {"name": "metadata.tags"})
    except DescriptorError as error:
        return str(error), error.field or "metadata.tags"
    return None


def content_hash(document: dict[str, Any], docs: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode())
    for path, text in sorted(docs):
        digest.update(path.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def document_parse(document: Any, *, path: str, index: int) -> Entity:
    """Check one YAML document and map it to Runway fields; raises DescriptorError saying what to fix."""
    if not isinstance(document, dict):
        raise DescriptorError("A descriptor must be a mapping with apiVersion, kind, metadata and spec.")
    api_version = document.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise DescriptorError(f"Unknown apiVersion {api_version!r}; use backstage.io/v1alpha1.", "apiVersion")
    kind = document.get("kind")
    if kind not in KINDS:
        raise DescriptorError(f"Unknown kind {kind!r}; Runway reads {', '.join(KINDS)} and Location.", "kind")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise DescriptorError("metadata must be a mapping with at least a name.", "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DescriptorError(
            "metadata.name must be lowercase letters, digits and hyphens (at most 100).", "metadata.name"
        )
    namespace = metadata.get("namespace") or "default"
    if not isinstance(namespace, str) or not NAMESPACE.fullmatch(namespace):
        raise DescriptorError("metadata.namespace must be lowercase letters, digits and hyphens.", "metadata.namespace")
    spec = document.get("spec") or {}
    if not isinstance(spec, dict):
        raise DescriptorError("spec must be a mapping.", "spec")
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise DescriptorError("metadata.annotations must be a mapping of strings.", "metadata.annotations")
    annotations = {str(k): _string(v, f"metadata.annotations.{k}") for k, v in annotations.items()}
    parser = _PARSERS[kind]
    fields, refs = parser(name, metadata, spec, annotations)
    return Entity(
        kind=kind, namespace=namespace, name=name, path=path, index=index, fields=fields, refs=refs, content_hash=""
    )


@dataclass
class Location:
    """A `kind: Location` document: other descriptor files to read, as (descriptor field, target) pairs."""

    file: str  # the relative path (or URL) of the file holding it
    index: int
    name: str
    targets: list[tuple[str, str]]
    optional: bool  # spec.presence: optional, so a missing target is not a problem

    @property
    def ref(self) -> str:
        return f"location:{self.name}"


def location_parse(document: dict[str, Any], *, path: str, index: int) -> Location:
    """Check a Location document (spec.target and/or spec.targets, optional spec.type and spec.presence)."""
    if document.get("apiVersion") not in API_VERSIONS:
        raise DescriptorError(
            f"Unknown apiVersion {document.get('apiVersion')!r}; use backstage.io/v1alpha1.", "apiVersion"
        )
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DescriptorError(
            "metadata.name must be lowercase letters, digits and hyphens (at most 100).", "metadata.name"
        )
    spec = document.get("spec") or {}
    if not isinstance(spec, dict):
        raise DescriptorError("spec must be a mapping.", "spec")
    if spec.get("type") not in (None, "url", "file"):
        raise DescriptorError("spec.type is url or file.", "spec.type")
    if spec.get("presence") not in (None, "required", "optional"):
        raise DescriptorError("spec.presence is required or optional.", "spec.presence")
    targets: list[tuple[str, str]] = []
    if spec.get("target") is not None:
        if not isinstance(spec["target"], str) or not spec["target"].strip():
            raise DescriptorError("must be a path or URL.", "spec.target")
        targets.append(("spec.target", spec["target"].strip()))
    listed = spec.get("targets") or []
    if not isinstance(listed, list):
        raise DescriptorError("must be a list of paths or URLs.", "spec.targets")
    for position, target in enumerate(listed):
        if not isinstance(target, str) or not target.strip():
            raise DescriptorError("must be a path or URL.", f"spec.targets[{position}]")
        targets.append((f"spec.targets[{position}]", target.strip()))
    if not targets:
        raise DescriptorError("A Location needs spec.target or spec.targets.", "spec.targets")
    return Location(path, index, name, targets, spec.get("presence") == "optional")


def _common(name: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "slug": name,
        "name": _string(metadata.get("title"), "metadata.title") or name,
        "description": _string(metadata.get("description"), "metadata.description"),
    }


def _parse_group(name: str, metadata: dict[str, Any], spec: dict[str, Any], annotations: dict[str, str]):  # type: ignore[no-untyped-def]
    profile = _profile(spec)
    fields = _common(name, metadata)
    display = _string(profile.get("displayName"), "spec.profile.displayName")
    fields["name"] = display or fields["name"]
    fields |= {"chat_channel": annotations.get(CHAT, ""), "on_call_url": annotations.get(ON_CALL, "")}
    leads = [lead.strip() for lead in annotations.get(LEADS, "").split(",") if lead.strip()]
    _validate(
        Team,
        fields,
        {
            "name": "spec.profile.displayName",
            "on_call_url": f"metadata.annotations.{ON_CALL}",
            "chat_channel": f"metadata.annotations.{CHAT}",
        },
    )
    members = _refs(spec, "members", "user", ("user",))
    fields["leads"] = leads
    # Where the team's (unique) name came from, so that a clash is reported on the field to change.
    fields["name_field"] = "spec.profile.displayName" if display else "metadata.title"
    return fields, {"parent": _one_ref(spec, "parent", "group", required=False), "members": members}


def _profile(spec: dict[str, Any]) -> dict[str, Any]:
    profile = spec.get("profile") or {}
    if not isinstance(profile, dict):
        raise DescriptorError("must be a mapping (displayName, email).", "spec.profile")
    return profile


_EMAIL_MAX = 254  # django.contrib.auth.models.User.email's max_length


def _parse_user(name: str, metadata: dict[str, Any], spec: dict[str, Any], annotations: dict[str, str]):  # type: ignore[no-untyped-def]
    profile = _profile(spec)
    display = _string(profile.get("displayName"), "spec.profile.displayName").strip()
    try:  # people's names are bulk-written, not model-validated: the same refusal as every other name
        bidi_controls_refuse(display)
    except ValidationError as error:
        raise DescriptorError(error.messages[0], "spec.profile.displayName") from error
    first, _, last = display.partition(" ")
    email = _string(profile.get("email"), "spec.profile.email")
    fields = {"username": name, "first_name": first[:150], "last_name": last[:150], "email": email}
    from django.core.validators import validate_email

    if email:
        try:
            validate_email(email)
        except ValidationError as error:
            raise DescriptorError("is not a valid email address.", "spec.profile.email") from error
        # validate_email accepts up to 320 characters; the column holds fewer.
        if len(email) > _EMAIL_MAX:
            raise DescriptorError(f"is longer than {_EMAIL_MAX} characters.", "spec.profile.email")
    return fields, {"memberOf": _refs(spec, "memberOf", "group", ("group",))}


def _parse_system(name: str, metadata: dict[str, Any], spec: dict[str, Any], annotations: dict[str, str]):  # type: ignore[no-untyped-def]
    fields = _common(name, metadata)
    _validate(System, fields, {"name": "metadata.title", "description": "metadata.description"})
    return fields, {"owner": _one_ref(spec, "owner", "group", required=True)}


def _parse_resource(name: str, metadata: dict[str, Any], spec: dict[str, Any], annotations: dict[str, str]):  # type: ignore[no-untyped-def]
    fields = _common(name, metadata) | {"type": _string(spec.get("type"), "spec.type"), "annotations": annotations}
    _validate(Resource, fields, {"name": "metadata.title", "type": "spec.type"})
    return fields, {
        "owner": _one_ref(spec, "owner", "group", required=True),
        "system": _one_ref(spec, "system", "system", required=False),
    }


def _parse_api(name: str, metadata: dict[str, Any], spec: dict[str, Any], annotations: dict[str, str]):  # type: ignore[no-untyped-def]
    import yaml

    definition = spec.get("definition") or ""
    if not isinstance(definition, str):
        definition = yaml.safe_dump(definition, sort_keys=False)
    api_type = _string(spec.get("type"), "spec.type").lower() or "openapi"
    lifecycle = _string(spec.get("lifecycle"), "spec.lifecycle") or "production"
    if lifecycle not in LIFECYCLES:
        raise DescriptorError(
            f"Unknown lifecycle {lifecycle!r}; use {', '.join(sorted(LIFECYCLES))}.", "spec.lifecycle"
        )
    fields = _common(name, metadata) | {
        "type": api_type if api_type in API_TYPES else "other",
        "lifecycle": lifecycle,
        "definition": definition,
        "annotations": annotations,
    }
    _validate(Api, fields, {"name": "metadata.title", "definition": "spec.definition"})
    return fields, {
        "owner": _one_ref(spec, "owner", "group", required=True),
        "system": _one_ref(spec, "system", "system", required=False),
    }


def _parse_component(name: str, metadata: dict[str, Any], spec: dict[str, Any], annotations: dict[str, str]):  # type: ignore[no-untyped-def]
    fields = _common(name, metadata)
    lifecycle = _string(spec.get("lifecycle"), "spec.lifecycle") or "experimental"
    if lifecycle not in LIFECYCLES:
        raise DescriptorError(
            f"Unknown lifecycle {lifecycle!r}; use {', '.join(sorted(LIFECYCLES))}.", "spec.lifecycle"
        )
    tier_text = annotations.get(TIER, "3")
    if not tier_text.isdigit() or not 1 <= int(tier_text) <= 4:
        raise DescriptorError("must be 1 (critical) to 4 (low).", f"metadata.annotations.{TIER}")
    tags = metadata.get("tags") or []
    if not isinstance(tags, list):
        raise DescriptorError("must be a list of tags.", "metadata.tags")
    fields |= {
        "lifecycle": lifecycle,
        "component_type": _string(spec.get("type"), "spec.type") or "service",
        "tier": int(tier_text),
        "language": annotations.get(LANGUAGE, ""),
        "chat_channel": annotations.get(CHAT, ""),
        "on_call_url": annotations.get(ON_CALL, ""),
        "repository_url": "",
        "docs_url": "",
        "dashboard_url": "",
        "tags": sorted({str(tag).lower() for tag in tags}),
    }
    links = metadata.get("links") or []
    if not isinstance(links, list):
        raise DescriptorError("must be a list of {url, title, type}.", "metadata.links")
    extra = []
    for position, link in enumerate(links):
        if not isinstance(link, dict) or not isinstance(link.get("url"), str):
            raise DescriptorError("each link needs a url.", f"metadata.links[{position}]")
        target = LINK_FIELDS.get(str(link.get("type", "")))
        if target and not fields[target]:
            fields[target] = link["url"]
        else:
            extra.append(
                {
                    "url": link["url"],
                    "title": _string(link.get("title"), "title"),
                    "type": _string(link.get("type"), "type"),
                }
            )
    location = annotations.get("backstage.io/source-location", "")
    if not fields["repository_url"] and location.startswith("url:"):
        fields["repository_url"] = location[4:]
    own = {TIER, LANGUAGE, CHAT, ON_CALL, DEPENDENCY_KINDS}
    fields["links"] = extra
    fields["annotations"] = {key: value for key, value in annotations.items() if key not in own}
    paths = {
        "name": "metadata.title",
        "description": "metadata.description",
        "component_type": "spec.type",
        "language": f"metadata.annotations.{LANGUAGE}",
        "chat_channel": f"metadata.annotations.{CHAT}",
        "on_call_url": f"metadata.annotations.{ON_CALL}",
        "repository_url": "metadata.links",
        "docs_url": "metadata.links",
        "dashboard_url": "metadata.links",
    }
    _validate(Service, {k: v for k, v in fields.items() if k != "tags"}, paths)
    for tag in fields["tags"]:
        problem = _tag_problem(tag)
        if problem is not None:
            raise DescriptorError(*problem)
    for position, link in enumerate(extra):
        _validate(Service, {"docs_url": link["url"]}, {"docs_url": f"metadata.links[{position}].url"})
    depends = _refs(spec, "dependsOn", "component", ("component", "resource"))
    kinds = {}
    for pair in annotations.get(DEPENDENCY_KINDS, "").split(","):
        target, _, kind = pair.partition("=")
        if target.strip():
            if kind.strip() not in ("runtime", "build", "data"):
                raise DescriptorError(
                    f"{pair!r}: use <service>=runtime|build|data.", f"metadata.annotations.{DEPENDENCY_KINDS}"
                )
            kinds[target.strip()] = kind.strip()
    fields["dependency_kinds"] = kinds
    return fields, {
        "owner": _one_ref(spec, "owner", "group", required=True),
        "system": _one_ref(spec, "system", "system", required=False),
        "dependsOn": depends,
        "providesApis": _refs(spec, "providesApis", "api", ("api",)),
        "consumesApis": _refs(spec, "consumesApis", "api", ("api",)),
    }


_PARSERS = {
    "Group": _parse_group,
    "User": _parse_user,
    "System": _parse_system,
    "Resource": _parse_resource,
    "API": _parse_api,
    "Component": _parse_component,
}


# --- export: Runway objects back to documents -------------------------------------------------------------------


def _metadata(slug: str, title: str, description: str, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": slug}
    if title and title != slug:
        metadata["title"] = title
    if description:
        metadata["description"] = description
    metadata.update({key: value for key, value in extra.items() if value})
    return metadata


def group_document(team: Team, *, members: list[str], leads: list[str]) -> dict[str, Any]:
    annotations = {CHAT: team.chat_channel, ON_CALL: team.on_call_url, LEADS: ", ".join(leads)}
    spec: dict[str, Any] = {"type": "team", "profile": {"displayName": team.name}, "children": []}
    if team.parent is not None:
        spec["parent"] = f"group:{team.parent.slug}"
    spec["members"] = members
    return {
        "apiVersion": API_VERSIONS[0],
        "kind": "Group",
        "metadata": _metadata(team.slug, "", team.description, annotations={k: v for k, v in annotations.items() if v}),
        "spec": spec,
    }


def user_document(user: Any, *, groups: list[str]) -> dict[str, Any]:
    profile = {"displayName": user.get_full_name() or user.username}
    if user.email:
        profile["email"] = user.email
    return {
        "apiVersion": API_VERSIONS[0],
        "kind": "User",
        "metadata": {"name": user.username},
        "spec": {"profile": profile, "memberOf": groups},
    }


def system_document(system: System) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSIONS[0],
        "kind": "System",
        "metadata": _metadata(system.slug, system.name, system.description),
        "spec": {"owner": f"group:{system.owner.slug}"},
    }


def _waiting_system(spec: dict[str, Any], waiting: Sequence[Any]) -> None:
    """A system the entity still waits for (catalog.models.UnresolvedRelation) is exported as it was written."""
    if "system" not in spec:
        for row in waiting:
            if row.relation == "system":
                spec["system"] = row.target_ref


def resource_document(resource: Resource, *, waiting: Sequence[Any] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": resource.type, "owner": f"group:{resource.owner.slug}"}
    if resource.system is not None:
        spec["system"] = resource.system.slug
    _waiting_system(spec, waiting)
    return {
        "apiVersion": API_VERSIONS[0],
        "kind": "Resource",
        "metadata": _metadata(resource.slug, resource.name, resource.description, annotations=resource.annotations),
        "spec": spec,
    }


def api_document(api: Api, *, waiting: Sequence[Any] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": api.type, "lifecycle": api.lifecycle, "owner": f"group:{api.owner.slug}"}
    if api.system is not None:
        spec["system"] = api.system.slug
    _waiting_system(spec, waiting)
    spec["definition"] = api.definition
    return {
        "apiVersion": API_VERSIONS[0],
        "kind": "API",
        "metadata": _metadata(api.slug, api.name, api.description, annotations=api.annotations),
        "spec": spec,
    }


def component_document(service: Service, *, waiting: Sequence[Any] = ()) -> dict[str, Any]:
    """The service as a Component; expects tags, dependencies, resources and APIs prefetched. `waiting` are its
    relations still waiting for their target (catalog.models.UnresolvedRelation), exported as they were written."""
    annotations = dict(service.annotations)
    annotations[TIER] = str(service.tier)
    for key, value in ((LANGUAGE, service.language), (CHAT, service.chat_channel), (ON_CALL, service.on_call_url)):
        if value:
            annotations[key] = value
    dependencies = sorted(service.dependencies.all(), key=lambda d: (d.target.slug, d.kind))
    kinds = [f"{d.target.slug}={d.kind}" for d in dependencies if d.kind != "runtime"]
    kinds += sorted(
        f"{row.target_name}={row.dependency_kind}"
        for row in waiting
        if row.relation == "dependsOn" and row.dependency_kind not in ("", "runtime")
    )
    if kinds:
        annotations[DEPENDENCY_KINDS] = ",".join(kinds)
    links = [
        {"url": getattr(service, attr), "title": kind.title(), "type": kind}
        for kind, attr in LINK_FIELDS.items()
        if getattr(service, attr) and attr != "on_call_url"
    ]
    links += service.links
    spec: dict[str, Any] = {
        "type": service.component_type,
        "lifecycle": service.lifecycle,
        "owner": f"group:{service.owner.slug}",
    }
    if service.system is not None:
        spec["system"] = service.system.slug
    _waiting_system(spec, waiting)
    later = {key: sorted(row.target_ref for row in waiting if row.relation == key) for key in SOFT_RELATIONS}
    depends = sorted({f"component:{d.target.slug}" for d in dependencies})
    depends += sorted(f"resource:{r.slug}" for r in service.resources.all())
    depends += later["dependsOn"]
    if depends:
        spec["dependsOn"] = depends
    for key, related in (("providesApis", service.provided_apis), ("consumesApis", service.consumed_apis)):
        names = sorted(f"api:{api.slug}" for api in related.all()) + later[key]
        if names:
            spec[key] = names
    return {
        "apiVersion": API_VERSIONS[0],
        "kind": "Component",
        "metadata": _metadata(
            service.slug,
            service.name,
            service.description,
            tags=[tag.name for tag in service.tags.all()],
            links=links,
            annotations=annotations,
        ),
        "spec": spec,
    }
