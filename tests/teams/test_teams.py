"""Teams: group membership follows Membership rows; leads manage their team; only staff create teams."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from teams import services
from teams.models import Membership, Team
from tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def test_team_create_makes_its_group_and_records_it():
    team = services.team_create(name="Data Platform", created_by=None)
    assert team.slug == "data-platform" and team.group.name == "team:data-platform"
    assert AuditEvent.objects.filter(action="team.created", object_id=str(team.pk)).exists()


def test_membership_joins_and_leaves_the_group(world):
    newcomer = UserFactory(username="nora")
    membership = services.membership_set(team=world.owner_team, user=newcomer, role="member", changed_by=world.staff)
    assert world.owner_team.group in newcomer.groups.all()
    services.membership_set(team=world.owner_team, user=newcomer, role="lead", changed_by=world.staff)
    assert Membership.objects.get(pk=membership.pk).role == "lead"
    services.membership_remove(membership=Membership.objects.get(pk=membership.pk), removed_by=world.staff)
    assert world.owner_team.group not in newcomer.groups.all()
    assert list(
        AuditEvent.objects.filter(object_type="teams.membership").values_list("action", flat=True).order_by("id")
    ) == ["membership.added", "membership.changed", "membership.removed"]


def test_a_team_cannot_be_its_own_ancestor(world):
    child = services.team_create(name="Child", created_by=None, parent=world.owner_team)
    with pytest.raises(ValidationError):
        services.team_update(team=world.owner_team, updated_by=world.staff, parent=child)


@pytest.mark.parametrize(("role", "expected"), [("staff", 302), ("owner", 403), ("anonymous", 302)])
def test_only_staff_create_teams(client, world, role, expected):
    if role != "anonymous":
        client.force_login(getattr(world, role))
    response = client.post(reverse("teams:team-create"), {"name": "Mobile", "slug": "mobile"})
    assert response.status_code == expected
    assert Team.objects.filter(slug="mobile").exists() is (role == "staff")
    if role == "staff":
        assert Group.objects.filter(name="team:mobile").exists()


def test_lead_edits_and_manages_members_member_cannot(client, world):
    lead = MembershipFactory(team=world.owner_team, role=Membership.Role.LEAD).user
    edit = reverse("teams:team-edit", args=[world.owner_team.slug])
    add = reverse("teams:membership-add", args=[world.owner_team.slug])
    client.force_login(world.owner)  # a plain member
    assert client.get(edit).status_code == 403
    assert client.post(add, {"username": "oscar", "role": "member"}).status_code == 403
    client.force_login(lead)
    assert client.post(edit, {"name": "Payments", "description": "Money"}).status_code == 302
    assert client.post(add, {"username": "oscar", "role": "member"}).status_code == 302
    assert Membership.objects.filter(team=world.owner_team, user=world.outsider).exists()
    assert Team.objects.get(pk=world.owner_team.pk).description == "Money"


def test_team_page_lists_members_and_services(client, world, django_assert_max_num_queries):
    client.force_login(world.outsider)
    with django_assert_max_num_queries(14):
        response = client.get(world.owner_team.get_absolute_url())
    content = response.content.decode()
    assert "olivia" in content and "Payments API" in content


def test_team_page_add_member_box_has_visible_labels(client, world):
    """Each field of the add-member box has a label a sighted user can read (not only a screen-reader one)."""
    import re

    lead = MembershipFactory(team=world.owner_team, role=Membership.Role.LEAD).user
    client.force_login(lead)
    page = client.get(reverse("teams:team-detail", args=[world.owner_team.slug])).content.decode()
    form = re.search(r'<form[^>]*action="[^"]*/members/".*?</form>', page, re.S)
    assert form is not None
    box = form.group()
    for name in ("username", "role"):
        field_id = re.search(rf'name="{name}"[^>]*id="([^"]+)"|id="([^"]+)"[^>]*name="{name}"', box)
        assert field_id is not None
        ident = field_id.group(1) or field_id.group(2)
        label = re.search(rf'<label for="{ident}">([^<]+)</label>', box)
        assert label is not None and label.group(1).strip(), f"no visible label for {name}"
    assert "visually-hidden" not in box


def test_team_list_and_team_page_sort_names_whatever_their_case(client, world):
    from tests.factories import TeamFactory, service_make

    for name in ("zeta", "Alpha", "beta"):
        TeamFactory(name=name, slug=name.lower())
        service_make(owner=world.owner_team, name=f"{name} service")
    client.force_login(world.outsider)
    teams = [team.name for team in client.get(reverse("teams:team-list")).context["teams"]]
    assert teams == sorted(teams, key=str.lower) and teams.index("Alpha") < teams.index("beta") < teams.index("zeta")
    owned = [s.name for s in client.get(reverse("teams:team-detail", args=[world.owner_team.slug])).context["services"]]
    assert owned == ["Alpha service", "beta service", "Payments API", "zeta service"]
