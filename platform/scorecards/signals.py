"""Rescoring on change: the catalog, techdocs, deployments and ownership reviews say nothing about scorecards; this
app listens to their models and asks for a (debounced) rescoring of the service concerned once the change commits."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save


def _schedule(service_id: int | None) -> None:
    if service_id is None:
        return
    from scorecards import services

    transaction.on_commit(partial(services.rescore_schedule, service_id=service_id))


def _service_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    if kwargs.get("signal") is post_delete:
        return  # its scores go with it (cascade)
    _schedule(instance.pk)


def _child_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    _schedule(getattr(instance, "service_id", None))


def _deployment_saved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    # Counted when made and when it ends; the engine's many saves in between change no fact.
    from deployments.models import TERMINAL_STATES, State

    if created or instance.state in TERMINAL_STATES or instance.state == State.FAILED:
        _schedule(instance.service_id)


def _tags_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any) -> None:
    if not action.startswith("post_"):
        return
    if not reverse:
        _schedule(instance.pk)
    else:
        for service_id in pk_set or ():
            _schedule(service_id)


def connect() -> None:
    from django.apps import apps

    from catalog.models import Service
    from deployments.models import Deployment, DeployTarget
    from techdocs.models import ADR, Runbook

    post_save.connect(_service_changed, sender=Service, dispatch_uid="scorecards-service-saved")
    for model in (Runbook, ADR, DeployTarget):
        for signal in (post_save, post_delete):
            signal.connect(_child_changed, sender=model, dispatch_uid=f"scorecards-{model.__name__}-{id(signal)}")
    post_save.connect(_deployment_saved, sender=Deployment, dispatch_uid="scorecards-deployment-saved")
    m2m_changed.connect(_tags_changed, sender=Service.tags.through, dispatch_uid="scorecards-service-tags")
    if apps.is_installed("reviews"):  # a verified (or orphaned) owner is a fact: `service.last_ownership_review`
        ownership = apps.get_model("reviews", "Ownership")
        post_save.connect(_child_changed, sender=ownership, dispatch_uid="scorecards-ownership-saved")
