"""The permission matrix: (owner-team member, other-team member, staff, anonymous) × (view, edit, transfer, API write).

Each cell names the exact response code. Writes that succeed are checked to have happened; writes refused are
checked to have left the service unchanged.
"""

import pytest
from django.urls import reverse

from catalog.models import Service
from reviews.models import Handover

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

ROLES = ["owner", "outsider", "staff", "anonymous"]
LOGIN = "/accounts/login/"


def _login(client, world, role):  # type: ignore[no-untyped-def]
    if role != "anonymous":
        client.force_login(getattr(world, role))


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("outsider", 200), ("staff", 200), ("anonymous", 302)])
def test_view_service_page(client, world, role, expected):
    _login(client, world, role)
    response = client.get(reverse("catalog:service-detail", args=[world.service.slug]))
    assert response.status_code == expected
    if role == "anonymous":
        assert response["Location"].startswith(LOGIN)
    else:
        assert b"Payments API" in response.content


@pytest.mark.parametrize(("role", "expected"), [("owner", 302), ("outsider", 403), ("staff", 302), ("anonymous", 302)])
def test_edit_service(client, world, role, expected):
    _login(client, world, role)
    url = reverse("catalog:service-edit", args=[world.service.slug])
    form = {"name": "Payments API", "description": f"edited by {role}", "lifecycle": "production", "tier": "1"}
    response = client.post(url, form)
    assert response.status_code == expected
    description = Service.objects.get(pk=world.service.pk).description
    if role in ("owner", "staff"):
        assert response["Location"] == world.service.get_absolute_url()
        assert description == f"edited by {role}"
    else:
        assert description == ""
        if role == "anonymous":
            assert response["Location"].startswith(LOGIN)


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("outsider", 403), ("staff", 200), ("anonymous", 302)])
def test_edit_form_page(client, world, role, expected):
    _login(client, world, role)
    assert client.get(reverse("catalog:service-edit", args=[world.service.slug])).status_code == expected


@pytest.mark.parametrize(("role", "expected"), [("owner", 302), ("outsider", 403), ("staff", 302), ("anonymous", 302)])
def test_transfer_ownership(client, world, role, expected):
    _login(client, world, role)
    url = reverse("catalog:service-transfer", args=[world.service.slug])
    response = client.post(url, {"new_owner": world.other_team.slug, "note": "reorg"})
    assert response.status_code == expected
    owner_id = Service.objects.get(pk=world.service.pk).owner_id
    # A platform admin transfers at once; an owner proposes a handover the receiving team's lead accepts.
    assert owner_id == (world.other_team.pk if role == "staff" else world.owner_team.pk)
    proposed = Handover.objects.filter(service=world.service, status=Handover.Status.PROPOSED).exists()
    assert proposed is (role == "owner")


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("outsider", 403), ("staff", 200), ("anonymous", 401)])
def test_api_write(api_client, world, role, expected):
    if role != "anonymous":
        api_client.force_authenticate(getattr(world, role))
    url = reverse("api:service-detail", args=[world.service.slug])
    response = api_client.patch(url, {"description": "via the API"}, format="json")
    assert response.status_code == expected
    changed = Service.objects.get(pk=world.service.pk).description == "via the API"
    assert changed is (expected == 200)


@pytest.mark.parametrize(("role", "expected"), [("owner", 202), ("outsider", 403), ("staff", 200), ("anonymous", 401)])
def test_api_transfer(api_client, world, role, expected):
    if role != "anonymous":
        api_client.force_authenticate(getattr(world, role))
    url = reverse("api:service-transfer", args=[world.service.slug])
    response = api_client.post(url, {"new_owner": world.other_team.slug}, format="json")
    assert response.status_code == expected


def test_transfer_moves_permissions(client, world):
    """After a transfer the old team can no longer edit and the new team can."""
    client.force_login(world.staff)
    client.post(reverse("catalog:service-transfer", args=[world.service.slug]), {"new_owner": world.other_team.slug})
    client.force_login(world.owner)
    edit = reverse("catalog:service-edit", args=[world.service.slug])
    assert client.get(edit).status_code == 403
    client.force_login(world.outsider)
    assert client.get(edit).status_code == 200


def test_perms_on_agrees_with_user_can_in_one_query(world, django_assert_num_queries):
    """The service page asks perms_on once where it asked user_can three times (four queries): same answers."""
    from django.contrib.auth.models import AnonymousUser, Permission

    from catalog.permissions import perms_on, user_can
    from tests.factories import UserFactory, service_make

    other = service_make(owner=world.other_team, slug="search-api")
    wide = UserFactory()
    wide.user_permissions.add(Permission.objects.get(codename="deploy_service"))
    inactive = UserFactory(is_active=False)
    names = [
        f"catalog.{codename}"
        for codename in Permission.objects.filter(
            content_type__app_label="catalog", content_type__model="service"
        ).values_list("codename", flat=True)
    ]
    for user in (world.owner, world.outsider, world.staff, wide, inactive, AnonymousUser()):
        for service in (world.service, other):
            fresh = type(user).objects.get(pk=user.pk) if user.pk else user  # no permission cache carried over
            with django_assert_num_queries(1 if fresh.is_authenticated and fresh.is_active else 0):
                granted = perms_on(fresh, service)
            assert granted == {name for name in names if user_can(fresh, name, service)}, (user, service)
    assert "catalog.change_service" in perms_on(world.owner, world.service)
    assert "catalog.change_service" not in perms_on(world.owner, other)
