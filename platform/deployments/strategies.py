"""Strategies turn a deploy target's settings into a fixed plan of steps, made once when a deployment is requested.

A step is a small dict: `scale` (make N replicas of the new release run and pass health checks), `retire`
(stop replicas of the previous release down to N), `shift` (send a share of traffic to the new release) and
`analyse` (bake for some seconds, then compare the new release with the previous one). Promotion, which makes
the new release the only one, and rollback are not steps: the engine runs them as states of their own.
"""

from typing import Any

from deployments.models import Strategy

Step = dict[str, Any]
# Rolling replacements are health-gated with a short analysis of their own rather than the full bake time.
ROLLING_GATE_SECONDS = 1


def plan_for(strategy: str, *, replicas: int, canary_steps: list[int], bake_seconds: int) -> list[Step]:
    if strategy == Strategy.ROLLING:
        return _rolling(replicas)
    if strategy == Strategy.BLUE_GREEN:
        return _blue_green(replicas, bake_seconds)
    if strategy == Strategy.CANARY:
        return _canary(replicas, canary_steps, bake_seconds)
    raise ValueError(f"Unknown strategy {strategy!r}.")


def _rolling(replicas: int) -> list[Step]:
    """Replace one replica at a time: start a new one, check it, stop an old one."""
    steps: list[Step] = []
    for done in range(1, replicas + 1):
        share = round(100 * done / replicas)
        steps += [
            {"action": "scale", "replicas": done},
            {"action": "shift", "share": share},
            {"action": "retire", "keep": replicas - done},
            {"action": "analyse", "bake": ROLLING_GATE_SECONDS, "label": f"replica {done} of {replicas}"},
        ]
    return steps


def _blue_green(replicas: int, bake_seconds: int) -> list[Step]:
    """Start the whole green set beside blue, verify it, switch all traffic, and bake with blue kept warm."""
    return [
        {"action": "scale", "replicas": replicas},
        {"action": "analyse", "bake": ROLLING_GATE_SECONDS, "label": "green set verified before the switch"},
        {"action": "shift", "share": 100},
        {"action": "analyse", "bake": bake_seconds, "label": "bake after the switch, blue kept running"},
    ]


def _canary(replicas: int, canary_steps: list[int], bake_seconds: int) -> list[Step]:
    """One canary replica takes growing shares of traffic, each share baked and analysed before the next."""
    steps: list[Step] = [{"action": "scale", "replicas": 1}]
    for share in sorted({int(share) for share in canary_steps if 0 < int(share) < 100}):
        steps += [
            {"action": "shift", "share": share},
            {"action": "analyse", "bake": bake_seconds, "label": f"canary at {share} %"},
        ]
    steps += [{"action": "scale", "replicas": replicas}, {"action": "shift", "share": 100}]
    return steps


def describe(step: Step) -> str:
    """The step in words, for the timeline."""
    action = step["action"]
    if action == "scale":
        return f"Start new replicas until {_verb(int(step['replicas']), 'run')}"
    if action == "retire":
        return f"Stop old replicas until {_verb(int(step['keep']), 'remain')}"
    if action == "shift":
        return f"Send {step['share']} % of traffic to the new release"
    if action == "analyse":
        return f"Bake {step['bake']} s, then analyse ({step.get('label', '')})"
    return action


def _verb(count: int, verb: str) -> str:
    """ "1 runs", "2 run": the verb agrees with the number of replicas."""
    return f"{count} {verb}s" if count == 1 else f"{count} {verb}"


def replicas(count: int) -> str:
    """ "1 replica", "2 replicas"."""
    return f"{count} replica" if count == 1 else f"{count} replicas"


def step_count(plan: list[Step]) -> int:
    """The steps a person sees: the plan's, then the promotion, which the pages list last."""
    return len(plan) + 1
