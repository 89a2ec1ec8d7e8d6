"""Helpers shared by governance tests and the browser journeys that need governance in a given state."""

from datetime import timedelta
from typing import Any

from django.utils import timezone

from governance import services
from governance.models import FreezeWindow


def freeze_in_force(*, user: Any, name: str) -> FreezeWindow:
    """An organisation-wide one-off freeze from a day ago to a day ahead (UTC), saved as a platform admin would."""
    now = timezone.now()
    return services.freeze_window_save(
        user=user,
        name=name,
        time_zone="UTC",
        start_date=(now - timedelta(days=1)).date(),
        start_time=now.time().replace(microsecond=0),
        end_date=(now + timedelta(days=1)).date(),
        end_time=now.time().replace(microsecond=0),
    )
