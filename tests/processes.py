"""What tests that start Runway in other processes (workers, the stack, a second installation) share."""

from urllib.parse import quote

from django.db import connection


def database_url(name: str | None = None) -> str:
    """The test run's PostgreSQL database (pytest-django's test_<name>), or another on its server, as a DATABASE_URL
    for a child process."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    location = (db["HOST"] or "") + (f":{db['PORT']}" if db["PORT"] else "")
    return f"postgres://{credentials}@{location}/{quote(name or db['NAME'])}"
