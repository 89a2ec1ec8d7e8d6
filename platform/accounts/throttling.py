"""Per-token rate limits: a fixed one-minute window counted atomically in the cache (Redis when configured)."""

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiToken

WINDOW_SECONDS = 60


class ApiTokenRateThrottle(BaseThrottle):
    """Limits requests made with a personal API token; browser sessions are not throttled here.

    `cache.add` then `cache.incr` is atomic on Redis (SET NX, INCRBY), so concurrent requests on several
    web processes can never both take the last slot.
    """

    def allow_request(self, request: Any, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"ratelimit:token:{token.pk}:{window}"
        cache.add(key, 0, timeout=WINDOW_SECONDS + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # the key expired between add and incr
            cache.add(key, 1, timeout=WINDOW_SECONDS + 5)
            count = 1
        self._retry_after = (window + 1) * WINDOW_SECONDS - now
        return count <= settings.API_TOKEN_RATE_LIMIT

    def wait(self) -> float | None:
        return max(1.0, self._retry_after)
