"""The callback endpoint tells a sender who cannot sign nothing about which deployments exist."""

from deployments import webhooks
from deployments.models import Deployment, DeployTarget
from tests.deployments.test_webhook import SECRET, callback_body, cd, deployment, production  # noqa: F401  (fixtures)


def _post(api_client, pk: int, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    http_headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    return api_client.post(
        f"/api/v1/deployments/{pk}/callback/", data=body, content_type="application/json", **http_headers
    )


def test_an_unknown_deployment_answers_as_a_bad_signature_does(deployment, api_client) -> None:  # noqa: F811
    body = callback_body("prepare")
    headers = webhooks.signed_headers("guessed", body)
    unknown_pk = Deployment.objects.order_by("-pk").values_list("pk", flat=True).first() + 1000

    forged = _post(api_client, deployment.pk, body, headers)
    unknown = _post(api_client, unknown_pk, body, headers)

    assert forged.status_code == 403
    assert (unknown.status_code, unknown.json()) == (forged.status_code, forged.json())
    # Unsigned requests get the same answer whether the deployment exists or not, too.
    assert _post(api_client, unknown_pk, body, {}).json() == _post(api_client, deployment.pk, body, {}).json()


def test_a_deployment_whose_target_has_no_secret_answers_as_a_bad_signature_does(deployment, api_client) -> None:  # noqa: F811
    body = callback_body("prepare")
    headers = webhooks.signed_headers("guessed", body)
    forged = _post(api_client, deployment.pk, body, headers)
    DeployTarget.objects.filter(service=deployment.service, environment=deployment.environment).update(
        webhook_secret=""
    )
    unsigned_target = _post(api_client, deployment.pk, body, headers)
    assert (unsigned_target.status_code, unsigned_target.json()) == (403, forged.json())
    assert SECRET not in str(forged.json())
