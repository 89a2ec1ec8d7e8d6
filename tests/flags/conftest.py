from dataclasses import dataclass

import pytest

from deployments.models import Environment
from flags import services
from flags.models import Flag
from tests.factories import TeamFactory, service_make


@dataclass
class Shop:
    flag: Flag
    staging: Environment
    production: Environment
    key: str  # an SDK key for the shop's production
    other_key: str  # an SDK key of another service


@pytest.fixture
def shop(db: None) -> Shop:
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    team = TeamFactory(name="Shop", slug="shop")
    service = service_make(owner=team, slug="checkout", name="Checkout")
    flag = services.flag_create(actor=None, service=service, key="new-checkout", default_variant="off")
    services.setting_update(actor=None, flag=flag, environment=production, enabled=True)
    _, key = services.sdk_key_create(actor=None, service=service, environment=production, name="checkout prod")
    other = service_make(owner=team, slug="search", name="Search")
    services.flag_create(actor=None, service=other, key="search-only")
    _, other_key = services.sdk_key_create(actor=None, service=other, environment=production, name="search prod")
    return Shop(flag=flag, staging=staging, production=production, key=key, other_key=other_key)
