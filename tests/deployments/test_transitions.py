"""The state machines' guards, driven directly: every move the tables forbid is refused by `transition()` itself
(and by the engine's and the decommission workflow's writers, which go through it), and nothing is written."""

import itertools
from datetime import date

import pytest
from django.db import transaction

from audit.models import AuditEvent
from deployments import decommission as retire
from deployments import engine, machine
from deployments.models import (
    Decommission,
    DecommissionEvent,
    DecommissionState,
    Deployment,
    DeploymentEvent,
    State,
)
from tests.deployments.support import release_make

pytestmark = pytest.mark.django_db

ILLEGAL = [
    (source, target)
    for source, target in itertools.product(State.values, State.values)
    if target not in machine.TRANSITIONS[source]
]
LEGAL = [(source, target) for source in State.values for target in sorted(machine.TRANSITIONS[source])]
DECOMMISSION_ILLEGAL = [
    (source, target)
    for source, target in itertools.product(DecommissionState.values, DecommissionState.values)
    if target not in retire.TRANSITIONS[source]
]
DECOMMISSION_LEGAL = [
    (source, target) for source in DecommissionState.values for target in sorted(retire.TRANSITIONS[source])
]


def test_the_tables_name_every_state() -> None:
    """A state missing from a table would make its moves a KeyError instead of a refusal."""
    assert set(machine.TRANSITIONS) == set(State.values)
    assert set(retire.TRANSITIONS) == set(DecommissionState.values)
    assert len(ILLEGAL) > 100 and len(DECOMMISSION_ILLEGAL) > 40


@pytest.fixture
def deployment(world, target) -> Deployment:  # type: ignore[no-untyped-def]
    return Deployment.objects.create(
        release=release_make(world.service),
        service=world.service,
        environment=target.environment,
        strategy="canary",
        runtime="simulated",
        plan=[{"action": "shift", "share": 100}],
    )


def _put(deployment: Deployment, state: str) -> Deployment:
    Deployment.objects.filter(pk=deployment.pk).update(state=state)
    return Deployment.objects.get(pk=deployment.pk)


def _written(deployment: Deployment) -> tuple[object, ...]:
    row = Deployment.objects.values_list("state", "version", "finished_at").get(pk=deployment.pk)
    events = DeploymentEvent.objects.filter(deployment=deployment).count()
    audited = AuditEvent.objects.filter(object_type="deployments.deployment", object_id=str(deployment.pk)).count()
    return (*row, events, audited)


def test_transition_refuses_every_illegal_move_and_writes_nothing(deployment) -> None:  # type: ignore[no-untyped-def]
    for source, target in ILLEGAL:
        current = _put(deployment, source)
        before = _written(current)
        with pytest.raises(machine.IllegalTransition, match=f"from {source} to {target}"):
            with transaction.atomic():
                machine.transition(current, target, message="should not happen")
        assert _written(current) == before, (source, target)


def test_transition_makes_every_legal_move(deployment) -> None:  # type: ignore[no-untyped-def]
    """The other half of the guard: it must not refuse what the table allows (or the test above proves nothing)."""
    for source, target in LEGAL:
        current = _put(deployment, source)
        with transaction.atomic():
            event = machine.transition(current, target, message="moved")
        assert Deployment.objects.get(pk=deployment.pk).state == target
        assert (event.from_state, event.step) == (source, target)


def test_the_engine_cannot_write_an_illegal_outcome(deployment) -> None:  # type: ignore[no-untyped-def]
    """A step whose work decided a move the machine forbids (a bug in a step) fails loudly at `_finish`, and its
    transaction leaves the row, the timeline and the audit log as they were."""
    for source, target in ILLEGAL:
        claimed = _put(deployment, source)
        before = _written(claimed)
        ctx = engine.context_for(claimed)
        with pytest.raises(machine.IllegalTransition):
            engine._finish(claimed, engine.Outcome(target=target, message="should not happen"), ctx)
        assert _written(claimed) == before, (source, target)


def test_the_engine_runs_no_step_in_a_final_state(deployment) -> None:  # type: ignore[no-untyped-def]
    """A task for a finished deployment (a late duplicate) must not move it: a final state has no way out."""
    for source in sorted(state for state, targets in machine.TRANSITIONS.items() if not targets):
        current = _put(deployment, source)
        before = _written(current)
        engine.run_step(current.pk, current.version)
        assert _written(current) == before, source


@pytest.fixture
def decommission(world) -> Decommission:  # type: ignore[no-untyped-def]
    return Decommission.objects.create(
        service=world.service, reason="Replaced.", planned_for=date(2026, 12, 31), requested_by=world.owner
    )


def _decommission_put(decommission: Decommission, state: str) -> Decommission:
    Decommission.objects.filter(pk=decommission.pk).update(state=state)
    return Decommission.objects.get(pk=decommission.pk)


def _decommission_written(decommission: Decommission) -> tuple[object, ...]:
    row = Decommission.objects.values_list("state", "version", "finished_at").get(pk=decommission.pk)
    events = DecommissionEvent.objects.filter(decommission=decommission).count()
    audited = AuditEvent.objects.filter(action__startswith="decommission.").count()
    return (*row, events, audited)


def test_decommission_transition_refuses_every_illegal_move(decommission) -> None:  # type: ignore[no-untyped-def]
    for source, target in DECOMMISSION_ILLEGAL:
        current = _decommission_put(decommission, source)
        before = _decommission_written(current)
        with pytest.raises(retire.IllegalTransition, match=f"from {source} to {target}"):
            with transaction.atomic():
                retire.transition(current, target, message="should not happen")
        assert _decommission_written(current) == before, (source, target)


def test_decommission_transition_makes_every_legal_move(decommission) -> None:  # type: ignore[no-untyped-def]
    for source, target in DECOMMISSION_LEGAL:
        current = _decommission_put(decommission, source)
        with transaction.atomic():
            retire.transition(current, target, message="moved")
        assert Decommission.objects.get(pk=decommission.pk).state == target


def test_the_decommission_worker_cannot_write_an_illegal_outcome(decommission) -> None:  # type: ignore[no-untyped-def]
    for source, target in DECOMMISSION_ILLEGAL:
        claimed = _decommission_put(decommission, source)
        before = _decommission_written(claimed)
        with pytest.raises(retire.IllegalTransition):
            retire._finish(claimed, retire.Outcome(target=target, message="should not happen"))
        assert _decommission_written(claimed) == before, (source, target)
