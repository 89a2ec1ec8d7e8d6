"""A deployment history for the demo organisation, made by the real engine on the simulated runtime.

`manage.py demo_load` calls `history_load()`. For each demo service it names, this module
1. adds the deploy targets it lacks, all on the `simulated` runtime since demo services have no code: rolling
   outside production, canary in it, short bakes (`TARGETS`);
2. gives the service a stand-in git repository in GIT_ROOT if it has none: a README and a changelog, four tagged
   releases and one newer commit on `main`, dated over the past weeks. The deploy form then offers tags and commits
   exactly as it does for a service made from a golden path, and releases are real commits;
3. if the service has no deployment yet, deploys some of those tags through `services.deployment_request` and runs
   every step with `engine.run_step` in this process, as a worker would (`drive`): policy check, rollout, analysis,
   promotion, and, for one production deployment told to be slow (the simulated runtime's `simulate` fault), a
   failed analysis and the rollback.

The history is made on a demo clock (`Clock`) that starts some weeks ago (`demo_load` loads the whole demo
organisation on it the first time, so nothing is deployed before the catalog knows it): `django.utils.timezone.now`
is swapped for the length of the run, and the clock jumps over each wait (bake times) instead of sleeping. Every
timestamp (deployments, timeline events, placements, releases, audit events) is therefore written once, by the code
that normally writes it, and they all agree. Nothing is enqueued meanwhile: here this function is the worker. A service
that already has deployments is left alone, so loading the demo again adds nothing.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import Service
from deployments import engine, services
from deployments.models import TERMINAL_STATES, Deployment, DeployTarget, Environment, RuntimeKind, State, Strategy
from scaffolder import publishers

# Deploy targets by environment slug; an environment not named here gets none.
TARGETS: dict[str, dict[str, Any]] = {
    "dev": {"strategy": Strategy.ROLLING, "replicas": 1, "bake_seconds": 2},
    "staging": {"strategy": Strategy.ROLLING, "replicas": 2, "bake_seconds": 3},
    "production": {"strategy": Strategy.CANARY, "replicas": 3, "canary_steps": [10, 50], "bake_seconds": 5},
}
DEMO_AGE = timedelta(days=28)  # a first load happens this long ago on the demo clock, before every commit below
RELEASE_AGES = [timedelta(days=24), timedelta(days=15), timedelta(days=8), timedelta(days=3)]  # the four tags
HEAD_AGE = timedelta(hours=6)  # the newest commit on main, never deployed: something to deploy from the form
# What every service went through, as (environment, release index, how long ago).
STORY = [
    ("production", 1, timedelta(days=14)),  # the first deployment recorded there: no baseline to compare with
    ("staging", 2, timedelta(days=7, hours=12)),
    ("production", 2, timedelta(days=7)),  # a canary analysed against the release it replaces
    ("dev", 3, timedelta(days=2, hours=12)),
]
STORY_EVERY_OTHER = [("staging", 3, timedelta(days=2))]  # half the services: staging has caught up with dev
# The first service's newest release went to production and answered slowly: analysis failed, Runway rolled back.
ROLLBACK = ("production", 3, timedelta(hours=3), "slow")
STEP_SECONDS = 2.0  # how long a step takes on the demo clock; waits (bakes) come on top
SUBJECTS = [
    "Add timeouts to every outbound HTTP call",
    "Retry idempotent requests once on a connection reset",
    "Log the request id on every line",
    "Cache owner lookups for a minute",
    "Answer 409 rather than 500 on a duplicate request",
    "Upgrade the HTTP client",
    "Export request latency histograms",
    "Remove the unused v0 endpoints",
    "Paginate the list endpoint",
    "Fix a race between two writers of the same row",
    "Read database credentials from the secret store",
    "Warm the connection pool at start-up",
    "Check the database in the readiness probe",
    "Shorten the graceful shutdown to 20 seconds",
    "Move to the current base image",
    "Add an index for the nightly report query",
]


_real_now = timezone.now  # taken before any swap, so a clock never reads another clock


@dataclass
class HistoryReport:
    """What `history_load` made."""

    targets: int = 0
    repositories: int = 0
    deployments: int = 0
    rolled_back: int = 0


class Clock:
    """Stands in for `timezone.now` while history is made: real time shifted into the past, jumping over waits."""

    def __init__(self, start: datetime) -> None:
        self._offset = start - _real_now()

    def now(self) -> datetime:
        return _real_now() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)

    def advance_to(self, moment: datetime) -> None:
        """Move forward to `moment`; never back, so timestamps keep their order."""
        gap = moment - self.now()
        if gap > timedelta(0):
            self._offset += gap


def _no_doorbell(deployment_id: int, version: int, *, delay: float = 0.0) -> None:
    """`engine.enqueue` while the demo history is made: the caller runs every step itself."""


@contextmanager
def on_clock(clock: Clock) -> Iterator[None]:
    """Everything in this block that asks `timezone.now` (auto_now fields included) gets the demo clock's time."""
    with mock.patch.object(timezone, "now", clock.now):
        yield


def drive(deployment: Deployment, *, clock: Clock, limit: int = 200) -> Deployment:
    """Run the deployment's steps here until it ends, as a worker would: each takes STEP_SECONDS, waits pass at once.

    Only for use inside `history_load`, where nothing else enqueues or runs these steps.
    """
    for _ in range(limit):
        current = Deployment.objects.only("state", "version", "next_run_at", "paused").get(pk=deployment.pk)
        if current.state in TERMINAL_STATES:
            return Deployment.objects.select_related("release").get(pk=deployment.pk)
        if current.paused:
            raise RuntimeError(f"Demo deployment #{deployment.pk} is paused.")
        if current.next_run_at:
            clock.advance_to(current.next_run_at)
        engine.run_step(current.pk, current.version)
        clock.advance(STEP_SECONDS)
    raise RuntimeError(f"Demo deployment #{deployment.pk} did not finish in {limit} steps.")


# Repositories


@dataclass(frozen=True)
class _Commit:
    subject: str
    at: datetime
    author: User
    tag: str = ""


def versions_for(slug: str) -> list[str]:
    """Four release tags for a service, the same on every run: a patch, then two minor releases."""
    rng = random.Random(f"versions:{slug}")
    major, minor = rng.randint(1, 5), rng.randint(0, 24)
    return [f"v{major}.{minor}.0", f"v{major}.{minor}.1", f"v{major}.{minor + 1}.0", f"v{major}.{minor + 2}.0"]


def _author(commit: _Commit) -> str:
    name = commit.author.get_full_name() or commit.author.username
    email = commit.author.email or f"{commit.author.username}@example.com"
    return f"{name} <{email}> {int(commit.at.timestamp())} +0000"


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n%s\n" % (len(raw), raw)


def _repository_make(service: Service, commits: list[_Commit]) -> None:
    """A bare repository for `service` in GIT_ROOT with `commits` in order on `main`, tagged where they say.

    One `git fast-import` writes the whole history (a process per commit would cost seconds over the demo), into a
    temporary folder that is renamed into place at the end, so a failure leaves no half-made repository.
    """
    readme = (
        f"# {service.name}\n\n{service.description}\n\n"
        "A stand-in repository made by `manage.py demo_load`: the demo organisation's services have no code. "
        "Their deploy targets use Runway's simulated runtime, so deploying a tag or commit from here drives the "
        "whole deployment engine without running anything.\n"
    )
    stream = bytearray()
    changelog = f"# Changes to {service.slug}\n"
    for mark, commit in enumerate(commits, start=1):
        changelog += f"\n- {commit.at:%Y-%m-%d}: {commit.subject}" + (f" ({commit.tag})" if commit.tag else "")
        author = _author(commit)
        stream += f"commit refs/heads/main\nmark :{mark}\nauthor {author}\ncommitter {author}\n".encode()
        stream += _data(commit.subject)
        if mark > 1:
            stream += f"from :{mark - 1}\n".encode()
        stream += b"M 100644 inline README.md\n" + _data(readme)
        stream += b"M 100644 inline CHANGELOG.md\n" + _data(changelog + "\n")
        if commit.tag:
            stream += f"reset refs/tags/{commit.tag}\nfrom :{mark}\n\n".encode()
    bare = Path(publishers.local_path(name=service.slug))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(bare.parent), "GIT_CONFIG_NOSYSTEM": "1"}
    with tempfile.TemporaryDirectory(prefix=f".{service.slug}-", dir=bare.parent) as temp:
        building = Path(temp) / "repository.git"
        for args, given in (
            (["init", "--quiet", "--bare", "--initial-branch=main", str(building)], None),
            (["--git-dir", str(building), "fast-import", "--quiet"], bytes(stream)),
        ):
            subprocess.run(["git", *args], input=given, env=env, capture_output=True, timeout=60, check=True)
        building.rename(bare)


# The history


@dataclass(frozen=True)
class _Planned:
    at: datetime
    service: Service
    environment: Environment
    version: str
    user: User
    fault: str = ""


def _people(service: Service, admin: User) -> list[User]:
    return list(User.objects.filter(memberships__team=service.owner_id).order_by("username")) or [admin]


def _plan(
    service: Service, index: int, now: datetime, environments: dict[str, Environment], admin: User
) -> tuple[list[_Commit], list[_Planned]]:
    """The service's commits and deployments; each service's story is shifted a couple of hours from the last."""
    rng = random.Random(f"history:{service.slug}")
    shift = timedelta(hours=2.3 * index, minutes=rng.randint(0, 50))
    people = _people(service, admin)
    versions = versions_for(service.slug)
    subjects = rng.sample(SUBJECTS, 2 * len(versions) + 1)
    commits = []
    for number, (version, age) in enumerate(zip(versions, RELEASE_AGES, strict=True)):
        author = people[number % len(people)]
        commits.append(_Commit(subjects[2 * number], now - age - shift - timedelta(hours=5), author))
        commits.append(_Commit(subjects[2 * number + 1], now - age - shift, author, tag=version))
    commits.append(_Commit(subjects[-1], now - HEAD_AGE - shift / 4, people[-1]))

    story = STORY + (STORY_EVERY_OTHER if index % 2 == 0 else [])
    planned = [
        _Planned(now - age - shift, service, environments[slug], versions[release], rng.choice(people))
        for slug, release, age in story
        if slug in environments
    ]
    slug, release, age, fault = ROLLBACK
    if index == 0 and slug in environments:
        planned.append(_Planned(now - age - shift, service, environments[slug], versions[release], people[0], fault))
    return commits, planned


def _targets_ensure(service: Service, environments: dict[str, Environment], admin: User) -> int:
    made = 0
    for slug, environment in environments.items():
        if not DeployTarget.objects.filter(service=service, environment=environment).exists():
            fields = {"runtime": RuntimeKind.SIMULATED, **TARGETS[slug]}
            services.target_save(service=service, environment=environment, user=admin, **fields)
            made += 1
    return made


def history_load(*, service_slugs: list[str], admin: User, clock: Clock | None = None) -> HistoryReport:
    """Deploy targets, stand-in repositories and a deployment history for these demo services; see the module.

    `clock`, if given, is the one the rest of the demo was loaded on; it must not be ahead of the history's start.
    """
    report = HistoryReport()
    environments = {e.slug: e for e in Environment.objects.filter(slug__in=TARGETS)}
    found = {s.slug: s for s in Service.objects.filter(slug__in=service_slugs).select_related("owner")}
    chosen = [found[slug] for slug in service_slugs if slug in found]
    now = timezone.now()
    planned: list[_Planned] = []
    for index, service in enumerate(chosen):
        commits, story = _plan(service, index, now, environments, admin)
        if not publishers.local_exists(name=service.slug):
            _repository_make(service, commits)
            report.repositories += 1
        if not Deployment.objects.filter(service=service).exists():
            planned += story
    planned.sort(key=lambda item: item.at)
    clock = clock or Clock(planned[0].at - timedelta(days=1) if planned else now)
    no_doorbell = mock.patch.object(engine, "enqueue", _no_doorbell)
    with transaction.atomic(), on_clock(clock), no_doorbell:
        for service in chosen:
            report.targets += _targets_ensure(service, environments, admin)
        tags: dict[int, dict[str, dict[str, str]]] = {}
        for item in planned:
            clock.advance_to(item.at)
            if item.service.pk not in tags:  # what the deploy form offers: the repository's tags
                refs = services.repository_refs(service=item.service)["tags"]
                tags[item.service.pk] = {tag["name"]: tag for tag in refs}
            tag = tags[item.service.pk][item.version]
            release = services.release_record(
                service=item.service,
                version=item.version,
                commit_sha=tag["sha"],
                committed_at=parse_datetime(tag["date"]),
                user=item.user,
            )
            deployment = services.deployment_request(
                service=item.service, environment=item.environment, user=item.user, release=release
            )
            if item.fault:
                config = {**deployment.config, "simulate": item.fault}
                Deployment.objects.filter(pk=deployment.pk).update(config=config)
            finished = drive(deployment, clock=clock)
            expected = State.ROLLED_BACK if item.fault else State.SUCCEEDED
            if finished.state != expected:
                raise RuntimeError(
                    f"Demo deployment #{finished.pk} of {item.service.slug} {item.version} to "
                    f"{item.environment.slug} ended {finished.state}, not {expected}: {finished.failure_reason}"
                )
            report.deployments += 1
            report.rolled_back += int(finished.state == State.ROLLED_BACK)
    return report
