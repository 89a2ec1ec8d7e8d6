"""Production: HTTPS only, JSON logs, secrets from the environment. `manage.py check --deploy` is clean."""

from portal.settings.base import *  # noqa: F403
from portal.settings.base import env, logging_configure

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")  # no default: refuse to start without a real key
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logging_configure(log_format=LOG_FORMAT, level=env.str("LOG_LEVEL", default="INFO"))

# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Production sits behind one reverse proxy (the header above trusts it too): sign-in throttling counts the address that
# proxy saw, not the proxy's own, or every user would share one count.
SIGNIN_TRUSTED_PROXIES = env.int("SIGNIN_TRUSTED_PROXIES", default=1)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Production services are not reached on the portal's own loopback: probes there could reach local-only endpoints.
MONITORING_PROBE_ALLOW_LOOPBACK = env.bool("MONITORING_PROBE_ALLOW_LOOPBACK", default=False)
