"""Tests: fast password hashing; everything else as configured by the environment (PostgreSQL and Redis in CI)."""

from portal.settings.base import *  # noqa: F403
from portal.settings.base import STATIC_ROOT

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request when it is missing

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
