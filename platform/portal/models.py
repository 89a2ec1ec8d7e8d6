"""The installation's own identity, stored in its database (see portal/cache.py)."""

from django.db import models


class Installation(models.Model):
    """One row, made at migrate time: a random id that, with the database's name, scopes every cache key.

    Unmanaged on purpose: `manage.py flush` (and the test runner's flush between transactional tests) empties every
    managed table, and an identity that changed under a running process would split its cache from its workers'.
    The table is created by migration 0003 all the same."""

    secret = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        managed = False
        db_table = "portal_installation"

    def __str__(self) -> str:
        return self.secret
