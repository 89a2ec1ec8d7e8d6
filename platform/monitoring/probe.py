"""The HTTP probe, safe against server-side request forgery.

A health check's URL is typed by a service owner but requested from inside Runway's network, so the probe:
- resolves the host itself, refuses the address if it falls in a denied network (`MONITORING_PROBE_DENY_NETWORKS`;
  loopback only when `MONITORING_PROBE_ALLOW_LOOPBACK`), and then connects to *that* address (the URL's host goes in
  the Host header and TLS server name), so a DNS answer that changes between check and connect (rebinding) cannot
  move the request elsewhere;
- refuses the portal's own admin paths on the portal's own hosts (`MONITORING_PROBE_DENY_PATHS`);
- follows a redirect only to the same scheme, host and port, re-checking each hop, and at most a few times;
- bounds the whole probe by the check's timeout and reads at most `MONITORING_PROBE_MAX_BODY_BYTES` of the body.
"""

import functools
import hashlib
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError

MAX_REDIRECTS = 5
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    latency_ms: int | None
    error: str


class Refused(Exception):
    """The probe would reach somewhere the deny rules forbid; the message says where and why."""


def _networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(net, strict=False) for net in settings.MONITORING_PROBE_DENY_NETWORKS]


def address_refusal(address: IPAddress) -> str:
    """Why the probe may not connect to `address`, or "" if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address reach it: mapped (::ffff:a.b.c.d), 6to4 (2002::/16) and NAT64
        # (64:ff9b::/96). They are judged as the IPv4 address inside.
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.sixtofour is not None:
            address = address.sixtofour
        elif address in NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # 0.0.0.0 and :: connect to the local machine on Linux: they count as loopback.
    if address.is_loopback or address.is_unspecified:
        if not settings.MONITORING_PROBE_ALLOW_LOOPBACK:
            return f"{address} is a loopback address, which probes may not reach here"
        return ""
    for network in _networks():
        if address.version == network.version and address in network:
            return f"{address} is in the denied network {network}"
    return ""


def _is_portal_host(host: str) -> bool:
    """Whether `host` is one of the portal's own names; ".example.com" covers its subdomains, as in ALLOWED_HOSTS."""
    configured = settings.MONITORING_PROBE_PORTAL_HOSTS
    for pattern in configured if configured is not None else settings.ALLOWED_HOSTS:
        pattern = pattern.lower()
        if pattern == host or (pattern.startswith(".") and (host == pattern[1:] or host.endswith(pattern))):
            return True
    return False


def url_refusal(url: str) -> str:
    """Why `url` may never be probed, judged without DNS (scheme, host, literal addresses, portal admin paths)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "Only http and https URLs can be probed."
    host = (parts.hostname or "").lower()
    if not host:
        return "The URL has no host."
    if parts.username or parts.password:
        return "Put no credentials in a probe URL."
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and (why := address_refusal(literal)):
        return f"Refused: {why}."
    # Django matches the decoded path, so "/%61dmin/" reaches the admin as well.
    path = unquote(parts.path) or "/"
    if _is_portal_host(host) and any(path.startswith(p) for p in settings.MONITORING_PROBE_DENY_PATHS):
        return f"Refused: {path} on {host} is one of the portal's own admin paths."
    return ""


def url_validate(url: str) -> None:
    """Raise a ValidationError on `url` saying what to fix; used when a check is saved."""
    if why := url_refusal(url):
        raise ValidationError({"url": why})


def _resolve(host: str, port: int) -> IPAddress:
    """The address to connect to: the first one DNS gives, after checking every one it gives."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise Refused(f"cannot resolve {host}: {error}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        # Refuse if any answer is denied: a host that also points at the metadata address is not to be trusted.
        if why := address_refusal(address):
            raise Refused(f"{host} resolves to {why}")
    if not addresses:
        raise Refused(f"cannot resolve {host}")
    return addresses[0]


def _pinned(url: str, *, own: bool = False) -> tuple[str, str, str]:
    """(URL with the host replaced by its checked address, Host header, TLS server name).

    `own`: a replica's URL that Runway's own runtime made (loopback, a port it chose), which nobody typed; it is
    requested as it is, since the loopback rule guards against typed URLs reaching the portal's machine."""
    if own:
        parts = urlsplit(url)
        return url, parts.netloc, parts.hostname or ""
    if why := url_refusal(url):
        raise Refused(why.removeprefix("Refused: ").rstrip("."))
    parts = urlsplit(url)
    try:
        # Headers and TLS names are ASCII: an internationalised name goes as its punycode form.
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except UnicodeError:
        raise Refused(f"{parts.hostname} is not a valid host name") from None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _resolve(host, port)
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    named = f"[{host}]" if ":" in host else host
    host_header = f"{named}:{parts.port}" if parts.port else named
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host_header, host


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every probe and scrape shares (certifi's CAs, as httpx's default). Building it reads
    and parses the CA bundle, about 16 ms of CPU: once per probe, that was nearly all a probe cost. A context is
    safe to share between threads; each connection still makes its own TLS session."""
    return httpx.create_ssl_context()


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def probe(*, url: str, timeout_ms: int, expected_status: int, body_match: str = "", own: bool = False) -> Outcome:
    """Request `url` once under the SSRF rules (see `_pinned` for `own`) and judge the answer; never raises for a
    network failure."""
    started = time.monotonic()
    deadline = started + timeout_ms / 1000
    cap = settings.MONITORING_PROBE_MAX_BODY_BYTES

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    def failed(error: str, status: int | None = None) -> Outcome:
        return Outcome(ok=False, status_code=status, latency_ms=elapsed_ms(), error=error[:300])

    current = url
    try:
        with httpx.Client(follow_redirects=False, trust_env=False, verify=tls_context()) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return failed(f"timed out after {timeout_ms} ms")
                target, host_header, server_name = _pinned(current, own=own)
                request = client.build_request(
                    "GET",
                    target,
                    headers={"Host": host_header, "User-Agent": "Runway health check", "Accept-Encoding": "identity"},
                    extensions={"sni_hostname": server_name},
                    timeout=httpx.Timeout(remaining),
                )
                response = client.send(request, stream=True)
                try:
                    location = response.headers.get("location")
                    if response.is_redirect and location and response.status_code != expected_status:
                        following = urljoin(current, location)
                        if _origin(following) != _origin(current):
                            return failed(
                                f"redirected to another host ({_origin(following)[1]}); probes do not follow that",
                                response.status_code,
                            )
                        current = following
                        continue
                    body = bytearray()
                    if body_match:
                        for chunk in response.iter_raw():
                            body += chunk
                            if len(body) >= cap:
                                break
                            if time.monotonic() > deadline:
                                return failed(f"timed out after {timeout_ms} ms reading the body", response.status_code)
                    latency = elapsed_ms()
                finally:
                    response.close()
                if response.status_code != expected_status:
                    return failed(f"answered {response.status_code}, expected {expected_status}", response.status_code)
                if body_match and body_match not in bytes(body[:cap]).decode("utf-8", errors="replace"):
                    return failed(
                        f"body does not contain {body_match!r} in its first {cap} bytes", response.status_code
                    )
                return Outcome(ok=True, status_code=response.status_code, latency_ms=latency, error="")
            return failed(f"more than {MAX_REDIRECTS} redirects")
    except Refused as refusal:
        return failed(f"refused: {refusal}")
    except httpx.TimeoutException:
        return failed(f"timed out after {timeout_ms} ms")
    except httpx.HTTPError as error:
        return failed(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


MAX_METRICS_BYTES = 4 * 1024 * 1024


class FetchFailed(Exception):
    """A page could not be fetched under the probe's rules; the message says why."""


def fetch_text(*, url: str, timeout_ms: int, max_bytes: int = MAX_METRICS_BYTES, own: bool = False) -> str:
    """GET `url` under the same SSRF rules as a probe (denied networks, loopback setting, pinned address) without
    following redirects, and return its body as text; at most `max_bytes`, within `timeout_ms` for everything."""
    deadline = time.monotonic() + timeout_ms / 1000
    try:
        target, host_header, server_name = _pinned(url, own=own)
        with httpx.Client(follow_redirects=False, trust_env=False, verify=tls_context()) as client:
            request = client.build_request(
                "GET",
                target,
                headers={"Host": host_header, "User-Agent": "Runway metrics scrape", "Accept-Encoding": "identity"},
                extensions={"sni_hostname": server_name},
                timeout=httpx.Timeout(timeout_ms / 1000),
            )
            response = client.send(request, stream=True)
            try:
                if response.status_code != 200:
                    raise FetchFailed(f"answered {response.status_code}, expected 200")
                body = bytearray()
                for chunk in response.iter_raw():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchFailed(f"answered more than {max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise FetchFailed(f"timed out after {timeout_ms} ms reading the body")
            finally:
                response.close()
    except Refused as refusal:
        raise FetchFailed(f"refused: {refusal}") from refusal
    except httpx.TimeoutException as error:
        raise FetchFailed(f"timed out after {timeout_ms} ms") from error
    except httpx.HTTPError as error:
        raise FetchFailed(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__) from error
    return bytes(body).decode("utf-8", errors="replace")


def simulated_outcome(check_id: int, now: datetime) -> Outcome:
    """A made-up result for a check on the simulated runtime, where nothing listens: it passes, with a latency that
    varies from probe to probe, and no request is made. Derived from the check and the minute, so a rerun agrees."""
    digest = hashlib.blake2b(f"{check_id}:{now:%Y%m%d%H%M}".encode(), digest_size=2).digest()
    return Outcome(ok=True, status_code=200, latency_ms=20 + int.from_bytes(digest) % 60, error="")
