"""Deploy runtimes by name. Tests may register their own in `REGISTRY` to script outcomes."""

from collections.abc import Callable

from deployments.runtimes.base import Runtime


def _local() -> Runtime:
    from deployments.runtimes.local import LocalRuntime

    return LocalRuntime()


def _webhook() -> Runtime:
    from deployments.runtimes.webhook import WebhookRuntime

    return WebhookRuntime()


def _simulated() -> Runtime:
    from deployments.runtimes.simulated import SimulatedRuntime

    return SimulatedRuntime()


REGISTRY: dict[str, Callable[[], Runtime]] = {"local": _local, "webhook": _webhook, "simulated": _simulated}


def get(name: str) -> Runtime:
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown deploy runtime {name!r}.") from None
    return factory()
