"""Deployment targets. Releases and the deployment state machine join them in a later capability."""

from django.db import models

from catalog.models import slug_validator


class Environment(models.Model):
    """A place services run, in promotion order; protected ones are production-like and gated more strictly."""

    name = models.CharField(max_length=50, unique=True)
    slug = models.SlugField(max_length=50, unique=True, validators=[slug_validator])
    order = models.PositiveSmallIntegerField(default=0, help_text="Promotion order: lower comes first.")
    protected = models.BooleanField(default=False, help_text="Production-like: changes need more care.")
    description = models.TextField(blank=True, max_length=2000)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name
