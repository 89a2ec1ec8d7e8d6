"""factory_boy factories; writes that need permissions go through the service functions, as the product does."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from catalog import services as catalog_services
from catalog.models import Service, System
from deployments.models import Environment
from teams.models import Membership, Team


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")
    group = factory.LazyAttribute(lambda team: Group.objects.create(name=f"team:{team.slug}"))


class MembershipFactory(factory.django.DjangoModelFactory):
    """Adds the user to the team's group too, as teams.services.membership_set does."""

    class Meta:
        model = Membership
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    role = Membership.Role.MEMBER

    @factory.post_generation
    def join_group(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            self.user.groups.add(self.team.group)


class SystemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = System

    slug = factory.Sequence(lambda n: f"system-{n}")
    name = factory.Sequence(lambda n: f"System {n}")
    owner = factory.SubFactory(TeamFactory)


def service_make(*, owner: Team | None = None, slug: str | None = None, **fields: object) -> Service:
    """A service created through service_create, so its owner team holds the real grants."""
    owner = owner or TeamFactory()
    slug = slug or f"svc-{ServiceSeq.next()}"
    return catalog_services.service_create(
        created_by=None, owner=owner, slug=slug, name=fields.pop("name", slug), **fields
    )


class ServiceSeq:
    counter = 0

    @classmethod
    def next(cls) -> int:
        cls.counter += 1
        return cls.counter


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment

    name = factory.Sequence(lambda n: f"Env {n}")
    slug = factory.Sequence(lambda n: f"env-{n}")
