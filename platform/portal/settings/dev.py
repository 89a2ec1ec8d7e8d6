"""Development and `make run`: served as production serves it (DEBUG off, the portal's own 404 and 500 pages, static
files collected and served by WhiteNoise), on the embedded defaults unless DATABASE_URL and REDIS_URL say otherwise.

A developer who wants Django's debug pages asks for them: `DEBUG=1 make run` (WhiteNoise then serves static files
straight from the source folders, so `collectstatic` is not needed).
"""

from portal.settings.base import *  # noqa: F403
from portal.settings.base import env

DEBUG = env.bool("DEBUG", default=False)
