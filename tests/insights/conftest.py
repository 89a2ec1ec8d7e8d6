"""The hand-made history of docs/insights.md's worked example: every figure in it was computed by hand."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from catalog.models import Service
from deployments.models import Environment, State
from teams.models import Team
from tests.factories import SystemFactory, TeamFactory, service_make
from tests.insights.support import change_set_make, deployment_make, release_make


def at(text: str) -> datetime:
    """A UTC instant written as 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class History:
    production: Environment
    staging: Environment
    payments: Team
    search: Team
    quiet: Team
    pay_api: Service
    ledger: Service
    finder: Service


@pytest.fixture
def history(db) -> History:  # type: ignore[no-untyped-def]
    production = Environment.objects.create(name="Production", slug="production", order=30, protected=True)
    staging = Environment.objects.create(name="Staging", slug="staging", order=20)
    payments = TeamFactory(name="Payments", slug="payments")
    search = TeamFactory(name="Search", slug="search")
    quiet = TeamFactory(name="Quiet", slug="quiet")
    core = SystemFactory(name="Payments core", slug="payments-core", owner=payments)
    pay_api = service_make(owner=payments, slug="pay-api", name="Pay API", system=core)
    ledger = service_make(owner=payments, slug="ledger", name="Ledger", system=core)
    finder = service_make(owner=search, slug="finder", name="Finder")
    service_make(owner=quiet, slug="idle", name="Idle")
    minute = timedelta(minutes=1)

    # pay-api: the window is 2 to 15 March 2026 in Europe/Paris (UTC+1).
    s1 = at("2026-03-01 23:30")  # 00:30 on 2 March in Paris: inside; outside in UTC
    first = deployment_make(pay_api, production, State.SUCCEEDED, started=s1 - 5 * minute, finished=s1)
    # Change lead time (first commit → success): exactly 1 hour here; 24 h, 0 (a commit dated after its success) and
    # 30 min below; the rollback redeploy of f1's release and the success at 22:59 on 15 March are not measured.
    change_set_make(first.release, at("2026-03-01 22:30"), at("2026-03-01 23:00"))
    f1 = deployment_make(  # rolled back after 20 minutes
        pay_api, production, State.ROLLED_BACK, started=at("2026-03-03 10:00"), finished=at("2026-03-03 10:20")
    )
    fix = deployment_make(
        pay_api, production, State.SUCCEEDED, started=at("2026-03-03 11:50"), finished=at("2026-03-03 12:00")
    )
    change_set_make(fix.release, at("2026-03-02 12:00"), at("2026-03-03 11:00"))
    change_set_make(f1.release, at("2026-02-20 12:00"))  # only redeployed as a rollback below: rework, not measured
    f2 = deployment_make(  # its rollback failed: recovered by the redeploy below, 6 hours after it started
        pay_api, production, State.ROLLBACK_FAILED, started=at("2026-03-05 09:00"), finished=at("2026-03-05 09:30")
    )
    deployment_make(
        pay_api,
        production,
        State.SUCCEEDED,
        started=at("2026-03-05 14:40"),
        finished=at("2026-03-05 15:00"),
        release=f1.release,
        rollback_of=f2,
    )
    # 23:59 on 15 March in Paris: inside. The next one is 00:10 on the 16th in Paris: outside (inside in UTC).
    deployment_make(
        pay_api, production, State.SUCCEEDED, started=at("2026-03-15 22:50"), finished=at("2026-03-15 22:59")
    )
    deployment_make(
        pay_api, production, State.SUCCEEDED, started=at("2026-03-15 23:05"), finished=at("2026-03-15 23:10")
    )
    deployment_make(
        pay_api, production, State.CANCELLED, started=at("2026-03-06 10:00"), finished=at("2026-03-06 10:01")
    )
    deployment_make(pay_api, staging, State.SUCCEEDED, started=at("2026-03-06 10:00"), finished=at("2026-03-06 10:05"))

    # ledger: reported by a CD system too.
    old = release_make(ledger)
    new = release_make(ledger)
    change_set_make(new, at("2026-03-04 09:00"))  # an hour after its success (a skewed clock): counts as 0
    change_set_make(old, at("2026-02-01 09:00"))  # redeployed as rework: not measured
    deployment_make(
        ledger,
        production,
        State.SUCCEEDED,
        started=at("2026-03-04 07:50"),
        finished=at("2026-03-04 08:00"),
        release=new,
    )
    deployment_make(  # reported failed, not rolled back: recovered by the next success, two days after it started
        ledger, production, "", started=at("2026-03-10 08:00"), finished=at("2026-03-10 08:05"), reported="failed"
    )
    deployment_make(  # a redeploy of an older release: rework
        ledger,
        production,
        "",
        started=at("2026-03-12 07:55"),
        finished=at("2026-03-12 08:00"),
        release=old,
        previous_release=new,
        reported="succeeded",
    )

    # finder: one recovery of exactly one hour (not "less than one hour") and one failure not recovered yet.
    found = deployment_make(
        finder, production, State.SUCCEEDED, started=at("2026-03-09 11:55"), finished=at("2026-03-09 12:00")
    )
    change_set_make(found.release, at("2026-03-09 11:30"))
    deployment_make(
        finder, production, State.ROLLED_BACK, started=at("2026-03-11 09:00"), finished=at("2026-03-11 10:00")
    )
    deployment_make(
        finder, production, "", started=at("2026-03-14 10:00"), finished=at("2026-03-14 10:05"), reported="failed"
    )
    return History(production, staging, payments, search, quiet, pay_api, ledger, finder)
