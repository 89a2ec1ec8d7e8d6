"""Writes for personal API tokens, and the record of failed sign-ins."""

import hashlib
import hmac
import secrets as random_secrets
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import selectors, throttling, tokens
from accounts.models import ApiToken
from audit import services as audit

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "rwy_"
MAX_LIFETIME_DAYS = 366


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def token_create(*, user: User, name: str, lifetime_days: int) -> tuple[ApiToken, str]:
    """Create a token and return it with its plain text, which is never stored and cannot be shown again."""
    if not 1 <= lifetime_days <= MAX_LIFETIME_DAYS:
        raise ValidationError({"lifetime_days": f"Choose between 1 and {MAX_LIFETIME_DAYS} days."})
    prefix = random_secrets.token_hex(6)
    secret = random_secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        name=name.strip(),
        prefix=prefix,
        digest=token_digest(secret),
        expires_at=timezone.now() + timedelta(days=lifetime_days),
    )
    token.full_clean()
    token.save()
    audit.event_record(
        actor=user,
        action="api_token.created",
        target=token,
        after={"name": token.name, "expires_at": token.expires_at.isoformat()},
    )
    return token, f"{TOKEN_PREFIX}{prefix}_{secret}"


@transaction.atomic
def token_revoke(*, token: ApiToken, revoked_by: User) -> ApiToken:
    """Revoke a token; the very next request that presents it is refused."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        tokens.entry_forget([token.prefix], for_good=True)
        audit.event_record(actor=revoked_by, action="api_token.revoked", target=token, before={"name": token.name})
    return token


def token_parse(presented: str) -> tuple[str, str] | None:
    """(prefix, digest of the secret) of a token presented as `rwy_<prefix>_<secret>`; None if it is not one."""
    if not presented.startswith(TOKEN_PREFIX):
        return None
    prefix, _, secret = presented[len(TOKEN_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    return prefix, token_digest(secret)


def token_authenticate(*, prefix: str, digest: str, cached: Any = None) -> ApiToken | None:
    """The active token with this prefix whose secret has this digest (see token_parse), or None; compares digests
    in constant time.

    `cached`: what the cache held for the token's prefix, when the caller fetched it already (see tokens.py).
    """
    if cached == tokens.REVOKED:
        return None
    token = tokens.entry_load(cached) if isinstance(cached, dict) else None
    from_cache = token is not None
    if token is None:
        token = selectors.token_with_user(prefix=prefix)
    if token is None or not hmac.compare_digest(token.digest, digest):
        return None
    if not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    # Written at most once a minute, so that a busy script does not turn every read into a write; the cached copy is
    # dropped with it, so the next request reads the new time.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        if from_cache:
            tokens.entry_forget([prefix], for_good=False)
            return token
    if not from_cache:
        tokens.entry_store(token)
    return token


def signin_failure_record(*, username: str, address: str) -> list[str]:
    """Count a failed sign-in from `address` as `username` (accounts.throttling) and audit it on the account, with any
    lockout it started. Unknown usernames are counted but not audited: people type passwords into the username box."""
    locks = throttling.signin_failure_count(username=username, address=address)
    user = User.objects.filter(username=username).first()
    if user is None:
        if locks:
            log.warning("signin_locked", address=address, locks=locks)
        return locks
    with transaction.atomic():
        audit.event_record(
            actor=None, actor_repr="anonymous", action="account.signin_failed", target=user, after={"address": address}
        )
        if locks:
            audit.event_record(
                actor=None,
                actor_repr="anonymous",
                action="account.signin_locked",
                target=user,
                after={"address": address, "seconds": settings.SIGNIN_LOCKOUT_SECONDS},
            )
    return locks
