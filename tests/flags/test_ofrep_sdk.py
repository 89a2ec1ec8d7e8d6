"""The OpenFeature Python SDK with its OFREP provider, unmodified, against a live Runway: every flag type, reason and
error code as a real client sees them."""

import itertools

import pytest
import requests
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from flags import services
from flags.models import Flag
from tests.flags.conftest import Shop

pytestmark = pytest.mark.django_db(transaction=True)
_domains = itertools.count()


def client_for(live_server, key: str):  # type: ignore[no-untyped-def]
    domain = f"runway-{next(_domains)}"
    api.set_provider(
        OFREPProvider(base_url=live_server.url, headers_factory=lambda: {"Authorization": f"Bearer {key}"}),
        domain,
    )
    return api.get_client(domain)


def user(key: str | None = "user-1", **attributes: object) -> EvaluationContext:
    return EvaluationContext(targeting_key=key, attributes=attributes)


def typed(shop: Shop, key: str, flag_type: str, variants: dict, default: str) -> Flag:  # type: ignore[type-arg]
    flag = services.flag_create(
        actor=None, service=shop.flag.service, key=key, flag_type=flag_type, variants=variants, default_variant=default
    )
    services.setting_update(actor=None, flag=flag, environment=shop.production, enabled=True)
    return flag


def test_every_reason_a_boolean_flag_can_give(live_server, shop: Shop) -> None:
    client = client_for(live_server, shop.key)

    static = client.get_boolean_details("new-checkout", True, user())
    assert (static.value, static.variant, static.reason) == (False, "off", Reason.STATIC)

    services.setting_update(
        actor=None,
        flag=shop.flag,
        environment=shop.production,
        rules=[
            {
                "name": "staff",
                "when": [{"attribute": "email", "op": "ends_with", "value": "@shop.example"}],
                "variant": "on",
            }
        ],
    )
    staff = client.get_boolean_details("new-checkout", False, user(email="ada@shop.example"))
    customer = client.get_boolean_details("new-checkout", True, user(email="bob@mail.example"))
    assert (staff.value, staff.reason, staff.flag_metadata["rule"]) == (True, Reason.TARGETING_MATCH, "staff")
    assert (customer.value, customer.reason) == (False, Reason.DEFAULT)

    services.setting_update(actor=None, flag=shop.flag, environment=shop.production, rollout={"on": 50, "off": 50})
    split = client.get_boolean_details("new-checkout", True, user("user-7", email="bob@mail.example"))
    assert split.reason == Reason.SPLIT and split.variant in ("on", "off")

    services.kill(actor=None, flag=shop.flag)
    disabled = client.get_boolean_details("new-checkout", True, user())
    assert (disabled.value, disabled.reason) == (True, Reason.DISABLED)  # off: the code default applies


def test_string_integer_float_and_object_flags(live_server, shop: Shop) -> None:
    typed(shop, "theme", "string", {"light": "light", "dark": "dark"}, "dark")
    typed(shop, "page-size", "integer", {"small": 10, "large": 50}, "large")
    typed(shop, "discount", "float", {"none": 0.0, "some": 0.15}, "some")
    typed(shop, "banner", "object", {"plain": {"text": "Hello", "colour": "blue"}}, "plain")
    client = client_for(live_server, shop.key)

    assert client.get_string_value("theme", "light", user()) == "dark"
    assert client.get_integer_value("page-size", 1, user()) == 50
    assert client.get_float_value("discount", 0.0, user()) == 0.15
    assert client.get_object_value("banner", {}, user()) == {"text": "Hello", "colour": "blue"}


def test_error_codes_reach_the_sdk(live_server, shop: Shop) -> None:
    client = client_for(live_server, shop.key)

    missing = client.get_boolean_details("no-such-flag", True, user())
    assert (missing.value, missing.error_code, missing.reason) == (True, ErrorCode.FLAG_NOT_FOUND, Reason.ERROR)

    mismatch = client.get_string_details("new-checkout", "plain", user())  # a boolean flag asked for text
    assert (mismatch.value, mismatch.error_code) == ("plain", ErrorCode.TYPE_MISMATCH)

    services.setting_update(actor=None, flag=shop.flag, environment=shop.production, rollout={"on": 10, "off": 90})
    anonymous = client.get_boolean_details("new-checkout", True, user(None))
    assert (anonymous.value, anonymous.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)

    url = f"{live_server.url}/ofrep/v1/evaluate/flags/new-checkout"
    headers = {"Authorization": f"Bearer {shop.key}"}
    invalid = requests.post(url, json={"context": {"targetingKey": 12}}, headers=headers, timeout=10)
    unparsable = requests.post(url, data=b"{not json", headers=headers, timeout=10)
    assert invalid.status_code == 400 and invalid.json()["errorCode"] == "INVALID_CONTEXT"
    assert unparsable.status_code == 400 and unparsable.json()["errorCode"] == "PARSE_ERROR"


def test_a_key_sees_its_own_service_and_environment_only(live_server, shop: Shop) -> None:
    other = client_for(live_server, shop.other_key)
    assert other.get_boolean_details("new-checkout", True, user()).error_code == ErrorCode.FLAG_NOT_FOUND
    assert other.get_boolean_value("search-only", True, user()) is True  # its own flag: off in production, code default

    nobody = client_for(live_server, "rwf_not-a-key")
    assert nobody.get_boolean_details("new-checkout", True, user()).error_code == ErrorCode.GENERAL
