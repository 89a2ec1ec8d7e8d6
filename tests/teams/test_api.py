"""The teams API: every signed-in user reads teams; staff create them; leads and maintainers manage them."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from audit.models import AuditEvent
from teams.models import Membership, Team
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

TEAMS_URL = reverse("api:team-list")
MEMBERSHIPS_URL = reverse("api:membership-list")


@pytest.fixture
def lead(world):  # type: ignore[no-untyped-def]
    return MembershipFactory(team=world.owner_team, user=UserFactory(username="lena"), role=Membership.Role.LEAD).user


@pytest.fixture
def maintainer(world):  # type: ignore[no-untyped-def]
    return MembershipFactory(
        team=world.owner_team, user=UserFactory(username="max"), role=Membership.Role.MAINTAINER
    ).user


def _as(api_client, world, role, **people):  # type: ignore[no-untyped-def]
    if role != "anonymous":
        api_client.force_authenticate(people.get(role) or getattr(world, role))


@pytest.mark.parametrize("role", ["owner", "outsider", "staff"])
def test_any_signed_in_user_lists_and_reads_teams(api_client, world, role, django_assert_max_num_queries):
    _as(api_client, world, role)
    with django_assert_max_num_queries(2):
        response = api_client.get(TEAMS_URL)
    assert response.status_code == 200
    assert [row["slug"] for row in response.json()["results"]] == ["payments", "search"]
    detail = api_client.get(reverse("api:team-detail", args=["search"]))
    assert detail.status_code == 200
    assert detail.json()["name"] == "Search"


def test_anonymous_cannot_read_teams(api_client, world):
    assert api_client.get(TEAMS_URL).status_code == 401
    assert api_client.get(reverse("api:team-detail", args=["payments"])).status_code == 401


def test_teams_filter_by_parent(api_client, world):
    Team.objects.filter(pk=world.other_team.pk).update(parent=world.owner_team)
    api_client.force_authenticate(world.owner)
    rows = api_client.get(TEAMS_URL, {"parent__slug": "payments"}).json()["results"]
    assert [row["slug"] for row in rows] == ["search"]
    assert rows[0]["parent"] == "payments"


@pytest.mark.parametrize(("role", "expected"), [("owner", 403), ("outsider", 403), ("lead", 403), ("anonymous", 401)])
def test_only_staff_create_teams(api_client, world, lead, role, expected):
    _as(api_client, world, role, lead=lead)
    response = api_client.post(TEAMS_URL, {"slug": "platform", "name": "Platform"}, format="json")
    assert response.status_code == expected
    assert not Team.objects.filter(slug="platform").exists()
    assert not Group.objects.filter(name="team:platform").exists()


def test_staff_create_a_team_with_its_group(api_client, world):
    api_client.force_authenticate(world.staff)
    response = api_client.post(TEAMS_URL, {"slug": "platform", "name": "Platform", "parent": "payments"}, format="json")
    assert response.status_code == 201, response.content
    team = Team.objects.get(slug="platform")
    assert team.group == Group.objects.get(name="team:platform")
    assert team.parent == world.owner_team
    assert AuditEvent.objects.get(action="team.created").actor_id == world.staff.pk


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"slug": "payments", "name": "Payments Two"}, "slug"),
        ({"slug": "payments-two", "name": "Payments"}, "name"),
        ({"slug": "platform", "name": "Platform", "parent": "no-such-team"}, "parent"),
        ({"slug": "platform", "name": "Platform", "on_call_url": "not a url"}, "on_call_url"),
    ],
)
def test_bad_team_input_is_a_field_error(api_client, world, payload, field):
    api_client.force_authenticate(world.staff)
    teams, groups = Team.objects.count(), Group.objects.count()
    response = api_client.post(TEAMS_URL, payload, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {field}
    assert (Team.objects.count(), Group.objects.count()) == (teams, groups)


@pytest.mark.parametrize(
    ("role", "expected"),
    [("lead", 200), ("maintainer", 200), ("staff", 200), ("owner", 403), ("outsider", 403), ("anonymous", 401)],
)
def test_who_may_change_a_team(api_client, world, lead, maintainer, role, expected):
    _as(api_client, world, role, lead=lead, maintainer=maintainer)
    url = reverse("api:team-detail", args=["payments"])
    response = api_client.patch(url, {"chat_channel": f"#payments-{role}"}, format="json")
    assert response.status_code == expected
    changed = Team.objects.get(pk=world.owner_team.pk).chat_channel == f"#payments-{role}"
    assert changed is (expected == 200)
    assert AuditEvent.objects.filter(action="team.updated").exists() is (expected == 200)


def test_a_team_slug_never_changes(api_client, world, lead):
    api_client.force_authenticate(lead)
    response = api_client.patch(
        reverse("api:team-detail", args=["payments"]), {"slug": "renamed", "name": "Payments Co"}, format="json"
    )
    assert response.status_code == 200
    team = Team.objects.get(pk=world.owner_team.pk)
    assert (team.slug, team.name, team.group.name) == ("payments", "Payments Co", "team:payments")


def test_a_team_cannot_be_nested_under_its_own_sub_team(api_client, world):
    Team.objects.filter(pk=world.other_team.pk).update(parent=world.owner_team)
    api_client.force_authenticate(world.staff)
    response = api_client.patch(reverse("api:team-detail", args=["payments"]), {"parent": "search"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"parent"}
    assert Team.objects.get(pk=world.owner_team.pk).parent is None


def test_teams_cannot_be_deleted_through_the_api(api_client, world):
    api_client.force_authenticate(world.staff)
    assert api_client.delete(reverse("api:team-detail", args=["payments"])).status_code == 405
    assert Team.objects.filter(slug="payments").exists()


@pytest.mark.parametrize("role", ["lead", "maintainer", "staff"])
def test_a_manager_adds_a_member_who_joins_the_group(api_client, world, lead, maintainer, role):
    newcomer = UserFactory(username="nina")
    _as(api_client, world, role, lead=lead, maintainer=maintainer)
    response = api_client.post(MEMBERSHIPS_URL, {"team": "payments", "user": "nina", "role": "member"}, format="json")
    assert response.status_code == 201, response.content
    assert Membership.objects.filter(team=world.owner_team, user=newcomer, role="member").exists()
    fresh = get_user_model().objects.get(pk=newcomer.pk)  # guardian caches permissions on the instance
    assert fresh.groups.filter(pk=world.owner_team.group_id).exists()
    assert fresh.has_perm("catalog.change_service", world.service)  # the team's grants now apply to them
    assert AuditEvent.objects.filter(action="membership.added").count() == 1


@pytest.mark.parametrize(("role", "expected"), [("owner", 403), ("outsider", 403), ("anonymous", 401)])
def test_others_cannot_add_members(api_client, world, role, expected):
    newcomer = UserFactory(username="nina")
    _as(api_client, world, role)
    response = api_client.post(MEMBERSHIPS_URL, {"team": "payments", "user": "nina", "role": "lead"}, format="json")
    assert response.status_code == expected
    assert not Membership.objects.filter(user=newcomer).exists()
    assert not newcomer.groups.exists()


def test_a_lead_of_another_team_cannot_add_members_here(api_client, world):
    other_lead = MembershipFactory(team=world.other_team, role=Membership.Role.LEAD).user
    UserFactory(username="nina")
    api_client.force_authenticate(other_lead)
    response = api_client.post(MEMBERSHIPS_URL, {"team": "payments", "user": "nina"}, format="json")
    assert response.status_code == 403
    assert not Membership.objects.filter(user__username="nina").exists()


def test_posting_an_existing_member_changes_their_role(api_client, world, lead):
    api_client.force_authenticate(lead)
    response = api_client.post(
        MEMBERSHIPS_URL, {"team": "payments", "user": "olivia", "role": "maintainer"}, format="json"
    )
    assert response.status_code == 201
    assert Membership.objects.get(team=world.owner_team, user=world.owner).role == "maintainer"
    assert Membership.objects.filter(team=world.owner_team, user=world.owner).count() == 1
    assert AuditEvent.objects.filter(action="membership.changed").count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"team": "payments", "user": "nobody"}, "user"),
        ({"team": "no-such-team", "user": "oscar"}, "team"),
        ({"team": "payments", "user": "oscar", "role": "owner"}, "role"),
    ],
)
def test_bad_membership_input_is_a_field_error(api_client, world, lead, payload, field):
    api_client.force_authenticate(lead)
    count = Membership.objects.count()
    response = api_client.post(MEMBERSHIPS_URL, payload, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {field}
    assert Membership.objects.count() == count


def test_an_inactive_user_cannot_be_added(api_client, world, lead):
    UserFactory(username="gone", is_active=False)
    api_client.force_authenticate(lead)
    response = api_client.post(MEMBERSHIPS_URL, {"team": "payments", "user": "gone"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"user"}


@pytest.mark.parametrize(("role", "expected"), [("lead", 204), ("owner", 403), ("outsider", 403)])
def test_removing_a_member_takes_them_out_of_the_group(api_client, world, lead, role, expected):
    membership = Membership.objects.get(team=world.owner_team, user=world.owner)
    _as(api_client, world, role, lead=lead)
    response = api_client.delete(reverse("api:membership-detail", args=[membership.pk]))
    assert response.status_code == expected
    removed = expected == 204
    assert Membership.objects.filter(pk=membership.pk).exists() is not removed
    fresh = get_user_model().objects.get(pk=world.owner.pk)
    assert fresh.groups.filter(pk=world.owner_team.group_id).exists() is not removed
    assert fresh.has_perm("catalog.change_service", world.service) is not removed


def test_memberships_list_and_filter(api_client, world, lead, django_assert_max_num_queries):
    api_client.force_authenticate(world.outsider)
    with django_assert_max_num_queries(2):
        response = api_client.get(MEMBERSHIPS_URL, {"team__slug": "payments"})
    assert response.status_code == 200
    assert [(row["user"], row["role"]) for row in response.json()["results"]] == [
        ("lena", "lead"),
        ("olivia", "member"),
    ]
    rows = api_client.get(MEMBERSHIPS_URL, {"role": "lead"}).json()["results"]
    assert [row["user"] for row in rows] == ["lena"]


def test_role_defaults_to_member(api_client, world, lead):
    UserFactory(username="nina")
    api_client.force_authenticate(lead)
    response = api_client.post(MEMBERSHIPS_URL, {"team": "payments", "user": "nina"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "member"
    assert Membership.objects.get(user__username="nina").role == "member"
