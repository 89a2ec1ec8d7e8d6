"""Flags without a client: validation, stickiness and distribution, versions and audit, the compiled set's cache, and
the protocol's edges over plain HTTP (bulk ETag and 304, hostile bodies)."""

import json
import random

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from flags import evaluation, selectors, services
from flags.models import FlagVersion
from tests.flags.conftest import Shop

BULK = "/ofrep/v1/evaluate/flags"


def post(client, path: str, body: object, key: str, **headers: str):  # type: ignore[no-untyped-def]
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(
        path, data=data, content_type="application/json", headers={"Authorization": f"Bearer {key}", **headers}
    )


def test_a_rollout_is_sticky_and_uniform() -> None:
    weights = [["a", 10.0], ["b", 30.0], ["c", 60.0]]
    rng = random.Random(7)
    keys = [f"user-{rng.getrandbits(64):x}" for _ in range(100_000)]
    served = [evaluation.split("checkout-v2", key, weights) for key in keys]

    for variant, weight in weights:
        assert abs(served.count(variant) / len(keys) * 100 - weight) < 1.0, variant
    assert [evaluation.split("checkout-v2", key, weights) for key in keys[:1000]] == served[:1000]
    # Another flag buckets the same people independently.
    other = [evaluation.split("search-v2", key, weights) for key in keys[:10_000]]
    assert sum(a != b for a, b in zip(other, served[:10_000], strict=True)) > 4_000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rollout": {"on": 50, "off": 40}}, "rollout"),
        ({"rollout": {"maybe": 100}}, "rollout"),
        ({"rules": [{"when": [{"attribute": "plan", "op": "matches", "value": ".*"}], "variant": "on"}]}, "rules"),
        ({"rules": [{"when": [{"op": "segment", "value": "nobody"}], "variant": "on"}]}, "rules"),
        ({"rules": [{"when": [{"attribute": "age", "op": "gt", "value": "18"}], "variant": "on"}]}, "rules"),
        ({"rules": [{"when": [], "variant": "sideways"}]}, "rules"),
        ({"default_variant": "sideways"}, "default_variant"),
    ],
)
def test_a_bad_setting_is_a_field_error_and_changes_nothing(shop: Shop, change: dict, field: str) -> None:  # type: ignore[type-arg]
    version = shop.flag.versions.count()
    with pytest.raises(ValidationError) as raised:
        services.setting_update(actor=None, flag=shop.flag, environment=shop.production, **change)
    assert field in raised.value.message_dict
    assert shop.flag.versions.count() == version


def test_variants_must_match_the_type(shop: Shop) -> None:
    with pytest.raises(ValidationError, match="not a integer value"):
        services.flag_create(actor=None, service=shop.flag.service, key="n", flag_type="integer", variants={"a": 1.5})
    with pytest.raises(ValidationError, match="not a integer value"):
        services.flag_create(actor=None, service=shop.flag.service, key="n", flag_type="integer", variants={"a": True})


def test_every_change_is_a_version_and_an_audit_event(shop: Shop) -> None:
    services.setting_update(actor=None, flag=shop.flag, environment=shop.staging, enabled=True, note="try it")
    services.kill(actor=None, flag=shop.flag)

    versions = list(FlagVersion.objects.filter(flag=shop.flag).order_by("number"))
    assert [v.number for v in versions] == [1, 2, 3, 4]
    assert versions[-1].snapshot["settings"]["production"]["enabled"] is False
    assert versions[-2].snapshot["settings"]["staging"]["enabled"] is True
    actions = list(
        AuditEvent.objects.filter(object_type="flags.flag", object_id=str(shop.flag.pk)).values_list(
            "action", flat=True
        )
    )
    assert actions.count("flag.killed") == 1 and actions.count("flag.changed") == 2


def test_a_rule_that_cannot_apply_serves_the_default_and_says_why(shop: Shop) -> None:
    services.setting_update(
        actor=None,
        flag=shop.flag,
        environment=shop.production,
        rules=[{"name": "adults", "when": [{"attribute": "age", "op": "gte", "value": 18}], "variant": "on"}],
    )
    compiled = selectors.flag_set(shop.flag.service_id, shop.production.pk)["flags"]["new-checkout"]

    status, body = evaluation.evaluate("new-checkout", compiled, {"targetingKey": "u", "age": "eighteen"})

    assert status == 200
    assert (body["value"], body["reason"]) == (False, "ERROR")
    assert body["metadata"]["error"] == "`age` is str, not a number, so `gte` cannot apply"


def test_bulk_answers_304_until_a_flag_changes(client, shop: Shop, django_capture_on_commit_callbacks) -> None:
    body = {"context": {"targetingKey": "user-1"}}
    first = post(client, BULK, body, shop.key)
    etag = first.headers["ETag"]

    again = post(client, BULK, body, shop.key, **{"If-None-Match": etag})
    with django_capture_on_commit_callbacks(execute=True):  # the set is forgotten when the change commits
        services.setting_update(actor=None, flag=shop.flag, environment=shop.production, default_variant="on")
    after = post(client, BULK, body, shop.key, **{"If-None-Match": etag})

    assert first.status_code == 200
    assert first.json()["flags"] == [
        {
            "key": "new-checkout",
            "value": False,
            "variant": "off",
            "reason": "STATIC",
            "metadata": {"version": 2, "service": "checkout"},
        }
    ]
    assert again.status_code == 304 and again.content == b""
    assert after.status_code == 200 and after.headers["ETag"] != etag
    assert after.json()["flags"][0]["value"] is True


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\x00\x01", "PARSE_ERROR"),
        (b"[" * 100_000 + b"]" * 100_000, "INVALID_CONTEXT"),  # over the size limit before any parsing
        (("[" * 5000 + "]" * 5000).encode(), "PARSE_ERROR"),
        (json.dumps({"context": "everyone"}).encode(), "INVALID_CONTEXT"),
        (json.dumps({"context": {f"a{i}": i for i in range(500)}}).encode(), "INVALID_CONTEXT"),
        (json.dumps([1, 2]).encode(), "PARSE_ERROR"),
    ],
)
def test_hostile_bodies_get_the_protocols_error_never_a_500(client, shop: Shop, body: bytes, code: str) -> None:
    for path in (BULK, f"{BULK}/new-checkout"):
        response = post(client, path, body, shop.key)
        assert response.status_code == 400, (path, response.content[:200])
        assert response.json()["errorCode"] == code


def test_a_revoked_key_is_refused_at_once(client, shop: Shop, django_capture_on_commit_callbacks) -> None:
    key = shop.flag.service.sdk_keys.get()
    assert post(client, BULK, {"context": {}}, shop.key).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        services.sdk_key_revoke(actor=None, key=key)

    assert post(client, BULK, {"context": {}}, shop.key).status_code == 401
    assert client.post(BULK, data="{}", content_type="application/json").status_code == 401
    assert client.get(BULK).status_code == 405
