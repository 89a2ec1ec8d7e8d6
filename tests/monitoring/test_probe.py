"""The probe against a real HTTP server: healthy, slow, failing, mismatched, redirected, huge, and refused."""

import socket

import pytest
from django.core.exceptions import ValidationError

from monitoring.probe import probe, url_refusal, url_validate
from tests.monitoring.conftest import HUGE_BYTES


def _probe(url: str, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("timeout_ms", 2000)
    kwargs.setdefault("expected_status", 200)
    return probe(url=url, **kwargs)


def test_a_healthy_answer_passes_with_its_status_and_latency(target):
    outcome = _probe(target.url("/ok"), body_match='"status": "ok"')
    assert outcome.ok, outcome.error
    assert outcome.status_code == 200
    assert outcome.latency_ms is not None and outcome.latency_ms >= 0


def test_a_slow_answer_times_out(target):
    outcome = _probe(target.url("/slow"), timeout_ms=300)
    assert not outcome.ok
    assert "timed out after 300 ms" in outcome.error
    assert outcome.status_code is None


def test_an_unexpected_status_fails_and_says_both(target):
    outcome = _probe(target.url("/fail"))
    assert not outcome.ok
    assert outcome.status_code == 503
    assert outcome.error == "answered 503, expected 200"


def test_an_expected_failure_status_passes(target):
    assert _probe(target.url("/fail"), expected_status=503).ok


def test_a_body_without_the_match_fails(target):
    outcome = _probe(target.url("/ok"), body_match="ready")
    assert not outcome.ok
    assert "does not contain 'ready'" in outcome.error


def test_a_redirect_to_another_host_is_refused_and_not_followed(target):
    outcome = _probe(target.url("/elsewhere"))
    assert not outcome.ok
    assert "redirected to another host (localhost)" in outcome.error
    assert [path for path, _host in target.hits] == ["/elsewhere"]


def test_a_redirect_on_the_same_host_is_followed(target):
    outcome = _probe(target.url("/moved"), body_match="ok")
    assert outcome.ok, outcome.error
    assert [path for path, _host in target.hits] == ["/moved", "/ok"]


def test_a_redirect_loop_stops(target):
    outcome = _probe(target.url("/loop"))
    assert not outcome.ok
    assert "more than 5 redirects" in outcome.error
    assert len(target.hits) == 6


def test_a_huge_body_is_read_only_up_to_the_cap(target, settings):
    settings.MONITORING_PROBE_MAX_BODY_BYTES = 100_000
    outcome = _probe(target.url("/huge"), body_match="not there", timeout_ms=5000)
    assert not outcome.ok
    assert "in its first 100000 bytes" in outcome.error
    # A match inside the cap passes without reading the rest (50 MB would take the whole timeout to arrive).
    assert _probe(target.url("/huge"), body_match="xxxx", timeout_ms=5000).ok
    assert HUGE_BYTES > 100 * settings.MONITORING_PROBE_MAX_BODY_BYTES


def test_loopback_is_refused_when_not_allowed_and_nothing_is_sent(target, settings):
    settings.MONITORING_PROBE_ALLOW_LOOPBACK = False
    for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0.0.0.0"):
        outcome = _probe(target.url("/ok", host=host))
        assert not outcome.ok
        assert "loopback" in outcome.error, (host, outcome.error)
    assert target.hits == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 carrying 169.254.169.254
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 carrying 169.254.169.254
        "http://169.254.169.254.nip.io.invalid/",  # unresolvable: refused, never sent
    ],
)
def test_metadata_and_link_local_addresses_are_refused(url):
    outcome = _probe(url, timeout_ms=500)
    assert not outcome.ok
    assert outcome.error.startswith("refused:"), outcome.error


def test_the_deny_list_is_checked_on_the_resolved_address_and_the_probe_connects_to_it(target, settings, monkeypatch):
    """A name that resolves into a denied network is refused; an allowed one is connected to at the very address
    that was checked, with the name in the Host header, so a second DNS answer cannot redirect the request."""
    real = socket.getaddrinfo
    answers = {"metadata.example": "169.254.169.254", "service.example": "127.0.0.1"}

    def resolve(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host in answers:
            return real(answers[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    refused = _probe(f"http://metadata.example:{target.port}/ok")
    assert not refused.ok
    assert "metadata.example resolves to 169.254.169.254 is in the denied network 169.254.0.0/16" in refused.error

    answers["service.example"] = "127.0.0.1"
    assert _probe(f"http://service.example:{target.port}/ok").ok
    assert target.hits == [("/ok", f"service.example:{target.port}")]


def test_the_portals_admin_paths_are_refused_on_its_own_hosts(target, settings):
    settings.ALLOWED_HOSTS = [".runway.example", "127.0.0.1"]
    for path in ("/admin/", "/admin/auth/user/", "/%61dmin/"):
        outcome = _probe(target.url(path))
        assert not outcome.ok
        assert "the portal's own admin paths" in outcome.error
    assert target.hits == []
    assert "admin paths" in url_refusal("https://eu.runway.example/admin/")
    assert url_refusal("https://runway.example.org/admin/") == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "Only http and https"),
        ("http://user:secret@example.com/", "no credentials"),
        ("http://169.254.169.254/", "denied network"),
        ("http://127.0.0.1/admin/", "admin paths"),
    ],
)
def test_saving_a_refused_url_says_what_to_fix(url, message):
    with pytest.raises(ValidationError) as error:
        url_validate(url)
    assert message in str(error.value.message_dict["url"])


def test_an_internationalised_host_name_is_sent_as_punycode(target, monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        return real("127.0.0.1" if host == "xn--bcher-kva.example" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert _probe(f"http://bücher.example:{target.port}/ok").ok
    assert target.hits == [("/ok", f"xn--bcher-kva.example:{target.port}")]
    refused = _probe("http://b\u00fccher..example/ok")
    assert not refused.ok and refused.error.startswith("refused:")
