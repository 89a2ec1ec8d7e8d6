"""The demo organisation's freeze windows: what `demo_load` adds beside the starter policies (policies/)."""

from datetime import date, time

from django.conf import settings

from governance import services
from governance.models import FreezeWindow

WEEKEND_FREEZE = "Weekend freeze"


def freezes_load() -> int:
    """The payments-api runbook's rule, "no deploys on Friday after 14:00", as a recurring freeze for the whole
    organisation on its own clock: every Friday 14:00 to Monday 08:00. How many windows were made (0 on a re-run)."""
    if FreezeWindow.objects.filter(name=WEEKEND_FREEZE).exists():
        return 0
    services.freeze_window_save(
        user=None,
        name=WEEKEND_FREEZE,
        reason="Nobody is on call to watch a Friday-afternoon change over the weekend.",
        time_zone=settings.GOVERNANCE["ORG_TIME_ZONE"],
        start_date=date(2026, 1, 2),  # a Friday
        start_time=time(14, 0),
        end_date=date(2026, 1, 5),
        end_time=time(8, 0),
        recurrence="FREQ=WEEKLY;BYDAY=FR",
    )
    return 1
