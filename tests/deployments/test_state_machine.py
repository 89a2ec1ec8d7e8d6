"""A Hypothesis state machine drives random sequences of requests, step outcomes, worker crashes and manual
controls against the real engine and database, and checks the invariants after every move."""

import itertools
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from audit.models import AuditEvent
from deployments import engine, services
from deployments.models import ACTIVE_STATES, TERMINAL_STATES, Deployment, DeployTarget, Environment, State
from portal.errors import Conflict
from tests.deployments.support import release_make, scripted
from tests.factories import service_make

pytestmark = pytest.mark.django_db
OUTCOMES = ["pass", "fail", "error", "crash", "bad", "rollback_fail", "none"]
counter = itertools.count()


def make_machine(world, runtime):  # type: ignore[no-untyped-def]
    class DeploymentMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            n = next(counter)
            self.service = service_make(owner=world.owner_team, slug=f"svc-{n}")
            self.environments = [
                Environment.objects.get_or_create(slug=slug, defaults={"name": slug.title(), "order": order})[0]
                for order, slug in enumerate(["staging", "production"])
            ]
            for environment in self.environments:
                DeployTarget.objects.create(
                    service=self.service, environment=environment, runtime="scripted",
                    strategy="canary", canary_steps=[20, 50], bake_seconds=0,
                )  # fmt: skip
            self.releases = [release_make(self.service, f"1.{i}.0") for i in range(3)]
            self.finished: dict[int, tuple[str, int]] = {}  # deployment -> (terminal state, version)

        def _deployments(self) -> list[Deployment]:
            return list(Deployment.objects.filter(service=self.service).order_by("pk"))

        def _pick(self, index: int) -> Deployment | None:
            """Mostly an active deployment (where moves matter), often the one that just moved (so controls land
            right after a failure), sometimes a finished one (which must not move)."""
            deployments = self._deployments()
            active = [d for d in deployments if d.state in ACTIVE_STATES]
            if active and index % 3 == 0:
                return max(active, key=lambda d: (d.updated_at, d.pk))
            pool = active if active and index % 5 else deployments
            return pool[index % len(pool)] if pool else None

        @initialize()
        def first_deployments(self) -> None:
            for environment in self.environments:
                services.deployment_request(
                    service=self.service, environment=environment, user=world.owner, release=self.releases[0]
                )

        @rule(env=st.integers(0, 1), release=st.integers(0, 2))
        def start(self, env: int, release: int) -> None:
            environment = self.environments[env]
            active = Deployment.objects.filter(
                service=self.service, environment=environment, state__in=ACTIVE_STATES
            ).first()
            try:
                services.deployment_request(
                    service=self.service, environment=environment, user=world.owner, release=self.releases[release]
                )
            except Conflict as conflict:
                assert active is not None and f"#{active.pk}" in conflict.message
            else:
                assert active is None

        @rule(index=st.integers(0, 20), outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=6))
        def steps(self, index: int, outcomes: list[str]) -> None:
            """A worker runs a few steps of one deployment, each with a scripted outcome."""
            deployment = self._pick(index)
            if deployment is None:
                return
            for outcome in outcomes:
                runtime.script.clear()
                if outcome != "none":
                    runtime.script.append(outcome)
                Deployment.objects.filter(pk=deployment.pk).update(next_run_at=None)
                engine.run_step(deployment.pk, Deployment.objects.get(pk=deployment.pk).version)

        @rule(index=st.integers(0, 20))
        def worker_dies_mid_step(self, index: int) -> None:
            """A worker claims the step and is killed before finishing; its lease later expires."""
            deployment = self._pick(index)
            if deployment is None:
                return
            engine._claim(deployment.pk, deployment.version)
            Deployment.objects.filter(pk=deployment.pk).update(lease_until=timezone.now() - timedelta(seconds=1))

        @rule(index=st.integers(0, 20), control=st.sampled_from(["promote", "abort", "pause", "resume"]))
        def control(self, index: int, control: str) -> None:
            deployment = self._pick(index)
            if deployment is not None:
                self._press(deployment, control)

        def _press(self, deployment: Deployment, control: str) -> None:
            calls = {
                "promote": lambda: services.deployment_promote(deployment=deployment, user=world.owner),
                "abort": lambda: services.deployment_abort(deployment=deployment, user=world.owner),
                "pause": lambda: services.deployment_pause(deployment=deployment, user=world.owner, paused=True),
                "resume": lambda: services.deployment_pause(deployment=deployment, user=world.owner, paused=False),
            }
            before = deployment.state
            try:
                calls[control]()
            except Conflict:
                assert Deployment.objects.get(pk=deployment.pk).state == before
            except ValidationError:
                pass

        @rule(index=st.integers(0, 20), control=st.sampled_from(["promote", "abort", "pause"]))
        def control_right_after_a_failure(self, index: int, control: str) -> None:
            """Failures are where a bad control would do harm: drive one deployment until an analysis fails,
            then press a button before the rollback has started."""
            deployment = self._pick(index)
            if deployment is None:
                return
            for _ in range(12):
                deployment.refresh_from_db()
                if deployment.state not in ACTIVE_STATES or deployment.state == State.FAILED:
                    break
                runtime.script.clear()
                runtime.script.append("fail")
                Deployment.objects.filter(pk=deployment.pk).update(next_run_at=None, lease_until=None)
                engine.run_step(deployment.pk, deployment.version)
            self._press(deployment, control)

        @invariant()
        def terminal_states_absorb(self) -> None:
            for deployment in self._deployments():
                if deployment.pk in self.finished:
                    assert (deployment.state, deployment.version) == self.finished[deployment.pk]
                elif deployment.state in TERMINAL_STATES:
                    self.finished[deployment.pk] = (deployment.state, deployment.version)

        @invariant()
        def at_most_one_active_per_environment(self) -> None:
            for environment in self.environments:
                active = Deployment.objects.filter(
                    service=self.service, environment=environment, state__in=ACTIVE_STATES
                )
                assert active.count() <= 1

        @invariant()
        def nothing_promoted_after_a_failed_analysis(self) -> None:
            for deployment in self._deployments():
                failed_at = None
                for event in deployment.events.order_by("id"):
                    if event.data.get("verdict") == "fail" or event.step == State.FAILED:
                        failed_at = failed_at or event.pk
                    if failed_at and event.step in (State.PROMOTING, State.SUCCEEDED) and event.from_state:
                        raise AssertionError(f"#{deployment.pk} promoted after failing: {event.message}")

        @invariant()
        def every_transition_has_one_audit_event(self) -> None:
            for deployment in self._deployments():
                transitions = sorted(deployment.events.exclude(from_state="").values_list("step", flat=True))
                audited = sorted(
                    action.removeprefix("deployment.")
                    for action in AuditEvent.objects.filter(
                        object_type="deployments.deployment", object_id=str(deployment.pk)
                    )
                    .exclude(action__in=["deployment.requested", "deployment.paused", "deployment.resumed"])
                    .values_list("action", flat=True)
                )
                assert transitions == audited

    return DeploymentMachine


def test_random_sequences_keep_the_invariants(world) -> None:
    with scripted() as runtime:
        run_state_machine_as_test(
            make_machine(world, runtime),
            settings=settings(
                max_examples=30,
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
