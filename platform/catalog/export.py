"""Catalog-as-code export: any team's or service's descriptors and docs, as files that import back unchanged."""

import io
import zipfile
from collections import defaultdict

import yaml
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404

from catalog import descriptors
from catalog.models import Api, Dependency, Resource, Service, System, UnresolvedRelation
from teams.models import Membership, Team
from techdocs import files as doc_files
from techdocs.models import ADR, Runbook


def _dump(documents: list[dict]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, width=120)


def _waiting(ids: dict[str, set[int]]) -> dict[tuple[str, int], list[UnresolvedRelation]]:
    """The relations the exported entities still wait for, so that they are exported too (one query)."""
    condition = Q(pk__in=[])
    for kind, pks in ids.items():
        if pks:
            condition |= Q(entity__kind=kind, entity__object_id__in=pks)
    waiting: dict[tuple[str, int], list[UnresolvedRelation]] = defaultdict(list)
    if any(ids.values()):
        for row in UnresolvedRelation.objects.filter(condition).select_related("entity"):
            waiting[(row.entity.kind, row.entity.object_id)].append(row)
    return waiting


def catalog_export(*, services: QuerySet[Service], teams: QuerySet[Team] | None = None) -> dict[str, str]:
    """Files (path → text) describing `services`, the systems, APIs and resources they use, and `teams`.

    Layout as docs/catalog-as-code.md describes: org/groups.yaml, org/users.yaml, systems.yaml, and one folder
    per service with catalog-info.yaml, docs/runbook*.md and docs/adr/NNNN-*.md.
    """
    services = services.select_related("owner", "system").prefetch_related(
        "tags",
        "resources",
        "provided_apis",
        "consumed_apis",
        Prefetch("dependencies", queryset=Dependency.objects.select_related("target")),
        Prefetch("runbooks", queryset=Runbook.objects.order_by("slug")),
        Prefetch("adrs", queryset=ADR.objects.select_related("superseded_by").prefetch_related("supersedes")),
    )
    out: dict[str, str] = {}
    service_list = list(services)
    service_ids = {s.pk for s in service_list}
    provided = defaultdict(list)
    for api in Api.objects.filter(providers__in=service_ids).select_related("owner", "system").distinct():
        first_provider = min(p.pk for p in api.providers.all() if p.pk in service_ids)
        provided[first_provider].append(api)
    resources_by_owner_service = defaultdict(list)
    for resource in Resource.objects.filter(dependents__in=service_ids).select_related("owner", "system").distinct():
        first = min(s.pk for s in resource.dependents.all() if s.pk in service_ids)
        resources_by_owner_service[first].append(resource)
    system_ids = {s.system_id for s in service_list if s.system_id}
    waiting = _waiting(
        {
            "Component": service_ids,
            "API": {a.pk for apis in provided.values() for a in apis},
            "Resource": {r.pk for resources in resources_by_owner_service.values() for r in resources},
        }
    )
    for service in service_list:
        documents = [descriptors.component_document(service, waiting=waiting[("Component", service.pk)])]
        documents += [descriptors.api_document(api, waiting=waiting[("API", api.pk)]) for api in provided[service.pk]]
        documents += [
            descriptors.resource_document(r, waiting=waiting[("Resource", r.pk)])
            for r in resources_by_owner_service[service.pk]
        ]
        for related in [*provided[service.pk], *resources_by_owner_service[service.pk]]:
            system_ids.add(related.system_id) if related.system_id else None
        out[f"{service.slug}/catalog-info.yaml"] = _dump(documents)
        for runbook in service.runbooks.all():
            out[f"{service.slug}/docs/{doc_files.runbook_filename(runbook)}"] = doc_files.runbook_render(runbook)
        for adr in service.adrs.all():
            out[f"{service.slug}/docs/adr/{doc_files.adr_filename(adr)}"] = doc_files.adr_render(adr)
    systems = System.objects.filter(pk__in=system_ids).select_related("owner").order_by("slug")
    if systems:
        out["systems.yaml"] = _dump([descriptors.system_document(s) for s in systems])
    team_ids = {s.owner_id for s in service_list} | {s.owner_id for s in systems}
    team_ids |= {o.owner_id for objs in [*provided.values(), *resources_by_owner_service.values()] for o in objs}
    if teams is not None:
        team_ids |= set(teams.values_list("pk", flat=True))
    team_list = list(Team.objects.filter(pk__in=team_ids).select_related("parent").order_by("slug"))
    # Parent teams come along so that the export imports on its own.
    known = {t.pk for t in team_list}
    for team in list(team_list):
        parent = team.parent
        while parent is not None and parent.pk not in known:
            team_list.append(parent)
            known.add(parent.pk)
            parent = parent.parent
    memberships = Membership.objects.filter(team__in=team_list).select_related("user", "team")
    members, leads, people = defaultdict(list), defaultdict(list), {}
    user_groups = defaultdict(list)
    for membership in memberships.order_by("user__username"):
        members[membership.team_id].append(membership.user.username)
        if membership.role == Membership.Role.LEAD:
            leads[membership.team_id].append(membership.user.username)
        people[membership.user.username] = membership.user
        user_groups[membership.user.username].append(f"group:{membership.team.slug}")
    out["org/groups.yaml"] = _dump(
        [
            descriptors.group_document(
                team, members=[f"user:{name}" for name in members[team.pk]], leads=leads[team.pk]
            )
            for team in sorted(team_list, key=lambda t: t.slug)
        ]
    )
    if people:
        out["org/users.yaml"] = _dump(
            [descriptors.user_document(people[name], groups=sorted(user_groups[name])) for name in sorted(people)]
        )
    return out


def export_zip(exported: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in sorted(exported.items()):
            archive.writestr(path, text)
    return buffer.getvalue()


def zip_response(*, team: str | None, service: str | None) -> HttpResponse:
    """A download of a team's services (`team`), one service (`service`), or the whole catalog, as a zip."""
    services_qs, teams_qs, name = Service.objects.all(), None, "catalog"
    if team:
        owner = get_object_or_404(Team, slug=team)
        services_qs, teams_qs, name = services_qs.filter(owner=owner), Team.objects.filter(pk=owner.pk), owner.slug
    elif service:
        one = get_object_or_404(Service, slug=service)
        services_qs, name = services_qs.filter(pk=one.pk), one.slug
    response = HttpResponse(
        export_zip(catalog_export(services=services_qs, teams=teams_qs)), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}-catalog.zip"'
    return response
