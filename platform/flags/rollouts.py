"""Progressive release of a flag: one variant's share of an environment grows along a schedule (1 → 10 → 50 → 100 %),
stepped by the Celery workers that drive deployments, with the deployments' canary analysis (deployments/analysis.py)
between steps, and an automatic roll back to the setting as it was before when an analysis fails.

What is analysed is the service's own Prometheus exposition (`metrics_url`, fetched under the probes' SSRF rules; or,
without one, every replica the deploy runtime says runs there, each replica's window its own, summed):
`http_requests_total` (5xx `status` counted as errors) and, when it has one, the request-duration histogram
(`http_request_duration_seconds`), whose buckets give the analysis a latency per request (docs/flags.md). A service
that labels its requests with the flag and the variant it served (`flag="<key>", variant="<name>"`, what an
OpenFeature hook can add) is compared variant against variant in each step's window: the released variant is the
canary, the others the baseline. Without those labels the comparison is before/after: the step's window against
everything counted before the rollout started. A window with too little traffic, or metrics that cannot be read, is
inconclusive: the step waits another interval, and after MAX_INCONCLUSIVE in a row the rollout rolls back (silence is
never health).

A step is `run_step(id, version)`, the engine's shape: *claim* (lock, check running, due and the version, bump the
version, hold a lease by moving `next_run_at` on), *work* (read the metrics, no lock held), *finish* (lock, check the
version is still ours, write the outcome and its timeline line, enqueue the next step on commit). A stale or
duplicate delivery finds another version and does nothing; the beat sweep enqueues whatever is due, so a lost
message or a dead worker only costs time. Controls (pause, resume, promote, abort) bump the version too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import event_record
from deployments import analysis
from deployments.models import Environment
from deployments.runtimes.base import Observation, Samples
from flags import services
from flags.models import Flag, FlagChange, FlagRollout, FlagRolloutEvent, FlagSetting
from portal.errors import Conflict

log = structlog.get_logger(__name__)
MAX_INCONCLUSIVE = 3
MAX_COUNTDOWN = 60
LEASE_SECONDS = 60
MAX_STEPS = 20
DEFAULT_STEPS = [1, 10, 50, 100]


class MetricsUnreadable(Exception):
    """The service's metrics could not be fetched or parsed; the analysis must not read it as health."""


def counters_read(url: str, flag_key: str) -> dict[str, Any]:
    """Cumulative request and 5xx counts of `http_requests_total`, and the buckets of the request-duration histogram
    (`http_request_duration_seconds`): in total, and per variant of this flag when the service labels them so."""
    from monitoring import probe  # monitoring's SSRF-safe fetch; monitoring never imports flags

    try:
        text = probe.fetch_text(url=url, timeout_ms=5000)
    except probe.FetchFailed as error:
        raise MetricsUnreadable(f"{url}: {error}") from error
    try:
        return _counters(text, flag_key)
    except MetricsUnreadable as error:
        raise MetricsUnreadable(f"{url} {error}") from error


def replicas_read(place: Any, flag_key: str) -> dict[str, Any]:
    """The counters of every running replica of a deployed service (`monitoring.replicas.Place`), by program, kept
    apart so that each replica's window is its own (one restarting is not a reset of the others). Every replica must
    be read: a window that left one out would judge a part of the traffic as the whole."""
    from monitoring import replicas

    try:
        found = replicas.pages(
            place, lambda text: _counters(text, flag_key), timeout_ms=5000, failures=(MetricsUnreadable,)
        )
    except replicas.Unreachable as unreachable:
        raise MetricsUnreadable(str(unreachable)) from unreachable
    for row, _, why in found:
        if why:
            raise MetricsUnreadable(f"replica {row['program']}: {why}")
    return {"replicas": {row["program"]: counters for row, counters, _ in found}}


def _counters(text: str, flag_key: str) -> dict[str, Any]:
    from monitoring import scrape

    total = [0.0, 0.0]
    variants: dict[str, list[float]] = {}
    buckets: dict[str, float] = {}
    variant_buckets: dict[str, dict[str, float]] = {}
    try:
        read = frozenset({scrape.REQUESTS, scrape.DURATION_BUCKET})
        for name, labels, value in analysis.counter_samples(text, read):
            variant = labels.get("variant") if labels.get("flag") == flag_key else None
            if name == scrape.REQUESTS:
                failed = analysis.failed(labels)
                total[0] += value
                total[1] += value * failed
                if variant is not None:
                    counts = variants.setdefault(variant, [0.0, 0.0])
                    counts[0] += value
                    counts[1] += value * failed
            elif "le" in labels:
                key = scrape.bucket_key(labels["le"])
                buckets[key] = buckets.get(key, 0.0) + value
                if variant is not None:
                    into = variant_buckets.setdefault(variant, {})
                    into[key] = into.get(key, 0.0) + value
    except ValueError as error:
        raise MetricsUnreadable(f"is not a Prometheus exposition: {error or 'unparsable line'}") from error
    return {
        "total": [round(v) for v in total],
        "variants": {name: [round(v) for v in counts] for name, counts in variants.items()},
        "buckets": {
            "total": scrape.buckets_ordered(buckets),
            "variants": {name: scrape.buckets_ordered(found) for name, found in variant_buckets.items()},
        },
    }


def _delta(
    now: list[int], before: list[int] | None, earlier: list[Any] | None = None, later: list[Any] | None = None
) -> tuple[Samples, list[Any]]:
    """Requests and errors in the window; a counter that went down was reset (a restart), so it counts from zero. And
    what the window added to each bucket of the histogram, given its buckets in both readings (`_histogram`); empty
    when the earlier reading has none."""
    from monitoring import scrape

    requests, errors = now
    restarted = not (before and before[0] <= requests and before[1] <= errors)
    if not restarted and before:
        requests, errors = requests - before[0], errors - before[1]
    increase: list[Any] = []
    if earlier is not None and later is not None:
        increase = later if restarted else scrape.buckets_increase(earlier, later)
    return Samples(requests=requests, errors=errors), increase


def _summed(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """Several replicas' counters as one service's: requests, errors and buckets added, in total and per variant."""
    from monitoring import scrape

    total = [0, 0]
    variants: dict[str, list[int]] = {}
    buckets: dict[str, Any] | None = None  # none of them read a histogram
    for reading in readings:
        total = [a + b for a, b in zip(total, reading.get("total") or [0, 0], strict=True)]
        for name, counts in (reading.get("variants") or {}).items():
            variants[name] = [a + b for a, b in zip(variants.get(name, [0, 0]), counts, strict=True)]
        if (found := reading.get("buckets")) is None:
            continue
        buckets = buckets or {"total": [], "variants": {}}
        buckets["total"] = scrape.buckets_add(buckets["total"], found.get("total") or [])
        for name, pairs in (found.get("variants") or {}).items():
            buckets["variants"][name] = scrape.buckets_add(buckets["variants"].get(name, []), pairs)
    return {"total": total, "variants": variants} | ({"buckets": buckets} if buckets is not None else {})


def _zero(reading: dict[str, Any]) -> dict[str, Any]:
    """A reading of the same shape with every count 0: what a replica had counted before it started."""
    zero: dict[str, Any] = {"total": [0, 0], "variants": {name: [0, 0] for name in reading.get("variants") or {}}}
    if (found := reading.get("buckets")) is not None:
        zero["buckets"] = {
            "total": [[le, 0] for le, _ in found.get("total") or []],
            "variants": {name: [[le, 0] for le, _ in pairs] for name, pairs in (found.get("variants") or {}).items()},
        }
    return zero


def _flat(reading: dict[str, Any]) -> dict[str, Any]:
    """A reading of one page as it is; one of several replicas as their sum."""
    if "replicas" not in reading:
        return reading
    return _summed(list(reading["replicas"].values()))


def _aligned(before: dict[str, Any], now: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two readings of several replicas as two sums whose difference is what each replica did in between: a replica
    that started since, or restarted (a counter went down), counts from zero; one that went away counts in neither."""
    if "replicas" not in now:
        return before, now
    earlier = before.get("replicas") if before else None
    if earlier is None:  # nothing read before the window (or a reading of another kind): counted from zero
        return before, _flat(now)
    olds, news = [], []
    for program, counts in now["replicas"].items():
        old = earlier.get(program)
        went_down = old is not None and any(n < o for n, o in zip(counts["total"], old["total"], strict=True))
        olds.append(_zero(counts) if old is None or went_down else old)
        news.append(counts)
    return _summed(olds), _summed(news)


def _histogram(counters: dict[str, Any], variant: str | None = None) -> list[Any] | None:
    """The histogram's buckets in a reading, in total or of one variant; None in a reading made before Runway read
    histograms (a window that starts from one compares errors only)."""
    found = counters.get("buckets")
    if found is None:
        return None
    return (found.get("total") if variant is None else (found.get("variants") or {}).get(variant)) or []


def observe(rollout: FlagRollout, now: dict[str, Any]) -> tuple[Observation, str]:
    """The window since the step began as an Observation (canary and baseline), and which comparison it is. Latencies
    come from the request-duration histogram (monitoring.scrape.latencies_ms), per variant or in total."""
    from monitoring import scrape

    before, now = _aligned(rollout.counters, now)
    if now["variants"].get(rollout.variant) is not None and before.get("variants"):
        windows = {
            name: _delta(counts, before["variants"].get(name), _histogram(before, name), _histogram(now, name))
            for name, counts in now["variants"].items()
        }
        canary, increase = windows.pop(rollout.variant)
        canary.latencies_ms = scrape.latencies_ms(increase)
        summed: list[Any] = []
        for _, added in windows.values():  # one histogram for the baseline, so its latencies stay within the limit
            summed = scrape.buckets_add(summed, added)
        baseline = Samples(
            requests=sum(s.requests for s, _ in windows.values()),
            errors=sum(s.errors for s, _ in windows.values()),
            latencies_ms=scrape.latencies_ms(summed),
        )
        return Observation(canary=canary, baseline=baseline if baseline.requests else None), "variants"
    started = _flat(rollout.started_counters)
    before_all = None
    if started.get("total") and started["total"][0]:
        latencies = scrape.latencies_ms(_histogram(started) or [])
        before_all = Samples(requests=started["total"][0], errors=started["total"][1], latencies_ms=latencies)
    canary, increase = _delta(now["total"], before.get("total"), _histogram(before), _histogram(now))
    canary.latencies_ms = scrape.latencies_ms(increase)
    return Observation(canary=canary, baseline=before_all), "before/after"


def steps_check(steps: object) -> list[float]:
    if not isinstance(steps, list) or not steps or len(steps) > MAX_STEPS:
        raise ValidationError({"steps": f"Give 1 to {MAX_STEPS} percentages, e.g. 1, 10, 50, 100."})
    checked: list[float] = []
    for value in steps:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
            raise ValidationError({"steps": "Each step is a percentage above 0 and at most 100."})
        if checked and value <= checked[-1]:
            raise ValidationError({"steps": "Each step must be larger than the one before."})
        checked.append(float(value))
    if checked[-1] != 100:
        raise ValidationError({"steps": "The last step is 100 %: a rollout ends with everyone on the variant."})
    return checked


def _event(rollout: FlagRollout, message: str, *, level: str = "info", actor: Any = None, **data: Any) -> None:
    person = actor if isinstance(actor, User) and actor.is_authenticated else None
    FlagRolloutEvent.objects.create(rollout=rollout, message=message, level=level, data=data, actor=person)


def _enqueue(rollout: FlagRollout, *, delay: float = 0.0) -> None:
    from flags import tasks

    rollout_id, version = rollout.pk, rollout.version
    countdown = min(max(delay, 0.0), MAX_COUNTDOWN) or None
    transaction.on_commit(lambda: tasks.rollout_step.apply_async((rollout_id, version), countdown=countdown))


def _schedule(rollout: FlagRollout, seconds: float) -> None:
    rollout.next_run_at = timezone.now() + timedelta(seconds=seconds)
    _enqueue(rollout, delay=seconds)


def _serve(rollout: FlagRollout, percent: float, *, actor: Any = None) -> None:
    """The environment serves the variant to `percent` % (sticky: those in at 1 % stay in at 10 %), the control to
    the rest. Not judged again: the rollout was judged when it started."""
    weights = {rollout.variant: percent, rollout.control: 100 - percent}
    services.setting_update(
        actor=actor,
        flag=rollout.flag,
        environment=rollout.environment,
        enabled=True,
        rollout=weights,
        note=f"progressive rollout #{rollout.pk}: {percent:g} % {rollout.variant}",
    )


def _restore(rollout: FlagRollout, *, actor: Any = None, why: str) -> None:
    before = rollout.before
    services.setting_update(
        actor=actor,
        flag=rollout.flag,
        environment=rollout.environment,
        enabled=bool(before.get("enabled")),
        rollout=before.get("rollout") or {},
        note=f"progressive rollout #{rollout.pk} rolled back: {why}"[:200],
    )


def _end(rollout: FlagRollout, state: str, message: str, *, actor: Any = None, level: str = "info") -> None:
    rollout.state, rollout.message, rollout.finished_at = state, message, timezone.now()
    rollout.version += 1
    rollout.next_run_at = None
    rollout.save()
    _event(rollout, message, level=level, actor=actor)
    event_record(
        actor=actor,
        action=f"flag_rollout.{state}",
        target=rollout,
        after={"flag": rollout.flag.key, "environment": rollout.environment.slug, "message": message},
        service_id=rollout.flag.service_id,
    )


def _roll_back(
    rollout: FlagRollout, reason: str, *, state: str = FlagRollout.State.ROLLED_BACK, actor: Any = None
) -> None:
    _restore(rollout, actor=actor, why=reason)
    shown = "off" if not rollout.before.get("enabled") else "its rollout as before"
    _end(rollout, state, f"Rolled back ({shown}): {reason}", actor=actor, level="error")


def _control_of(flag: Flag, setting: FlagSetting, variant: str) -> str:
    if setting.default_variant != variant:
        return setting.default_variant
    return next(name for name in flag.variants if name != variant)


def rollout_start(
    *,
    actor: Any,
    flag: Flag,
    environment: Environment,
    variant: str,
    steps: object = None,
    interval_seconds: int = 300,
    metrics_url: str,
    judged: bool = True,
) -> FlagRollout | FlagChange:
    """Start releasing `variant` along `steps`; a worker takes the first step at once. In a protected environment the
    deploy policies judge the whole release first (the flag on, the variant at 100 %), as a person's setting change
    is judged: a deny refuses it; a require_approval holds the start as a FlagChange (returned), and the approval
    that completes it starts the rollout (flags/changes.py). `judged=False` is for the system (demo, an approval)."""
    if variant not in flag.variants:
        raise ValidationError({"variant": f"{variant!r} is not a variant of {flag.key}."})
    if len(flag.variants) < 2:
        raise ValidationError({"variant": "A rollout needs a second variant for everyone else meanwhile."})
    checked = steps_check(DEFAULT_STEPS if steps is None else steps)
    if not 5 <= interval_seconds <= 86_400:
        raise ValidationError({"interval_seconds": "Bake each step from 5 seconds to a day."})
    if not metrics_url:
        try:
            _place(flag, environment)
        except MetricsUnreadable as unreadable:
            raise ValidationError({"metrics_url": str(unreadable)}) from unreadable
    plan = {"variant": variant, "steps": checked, "interval_seconds": interval_seconds, "metrics_url": metrics_url}
    if FlagRollout.objects.filter(flag=flag, environment=environment, state__in=FlagRollout.ACTIVE).exists():
        raise Conflict(f"{flag.key} already has a rollout under way in {environment.name}: abort it first.")
    if judged and environment.protected:
        FlagRollout(flag=flag, environment=environment, control=variant, **plan).full_clean(
            exclude=["flag", "environment"], validate_constraints=False
        )  # a bad URL is a field error before any policy is asked
        held = _judge_start(actor=actor, flag=flag, environment=environment, plan=plan)
        if held is not None:
            return held
    with transaction.atomic():
        flag = Flag.objects.select_for_update().select_related("service").get(pk=flag.pk)
        setting = FlagSetting.objects.get(flag=flag, environment=environment)
        if FlagRollout.objects.filter(flag=flag, environment=environment, state__in=FlagRollout.ACTIVE).exists():
            raise Conflict(f"{flag.key} already has a rollout under way in {environment.name}: abort it first.")
        rollout = FlagRollout(
            flag=flag,
            environment=environment,
            control=_control_of(flag, setting, variant),
            before={"enabled": setting.enabled, "rollout": setting.rollout},
            version=1,
            next_run_at=timezone.now(),
            started_by=actor if isinstance(actor, User) and actor.is_authenticated else None,
            **plan,
        )
        rollout.full_clean()
        rollout.save()
        shown = " → ".join(f"{step:g} %" for step in checked)
        _event(
            rollout,
            f"Started: {variant} to {shown}, {interval_seconds} s a step, analysing "
            f"{metrics_url or f'every replica of {flag.service.slug} in {environment.slug}'}.",
            actor=actor,
        )
        event_record(
            actor=actor,
            action="flag_rollout.started",
            target=rollout,
            after={"flag": flag.key, "environment": environment.slug, "variant": variant, "steps": checked},
            service_id=flag.service_id,
        )
        _enqueue(rollout)
    return rollout


def _judge_start(*, actor: Any, flag: Flag, environment: Environment, plan: dict[str, Any]) -> FlagChange | None:
    """The policies' word on the whole release; None when it may start now."""
    setting = FlagSetting.objects.get(flag=flag, environment=environment)
    variant = plan["variant"]
    after = {"enabled": True, "rollout": {variant: 100.0, _control_of(flag, setting, variant): 0.0}}
    _decision, held = services.policies_judge(
        actor=actor,
        flag=flag,
        environment=environment,
        setting=setting,
        after=after,
        proposed={"rollout_start": plan},
        note=f"progressive rollout of {variant}",
    )
    return held


def run_step(rollout_id: int, version: int) -> None:
    """One step of a rollout: claim, read the metrics, finish (see the module docstring)."""
    now = timezone.now()
    with transaction.atomic():
        rollout = (
            FlagRollout.objects.select_for_update()
            .filter(pk=rollout_id, state=FlagRollout.State.RUNNING, version=version)
            .first()
        )
        if rollout is None:
            return  # stale, duplicate, paused or ended
        if rollout.next_run_at and rollout.next_run_at > now + timedelta(seconds=1):
            _enqueue(rollout, delay=(rollout.next_run_at - now).total_seconds())  # woke early (capped countdown)
            return
        rollout.version += 1
        rollout.next_run_at = now + timedelta(seconds=LEASE_SECONDS)
        rollout.save(update_fields=["version", "next_run_at"])
    claimed = rollout.version
    counters, error = None, ""
    try:
        if rollout.metrics_url:
            counters = counters_read(rollout.metrics_url, rollout.flag.key)
        else:
            counters = replicas_read(_place(rollout.flag, rollout.environment), rollout.flag.key)
    except MetricsUnreadable as unreadable:
        error = str(unreadable)
    with transaction.atomic():
        rollout = (
            FlagRollout.objects.select_for_update().select_related("flag__service", "environment").filter(pk=rollout_id)
        ).first()
        if rollout is None or rollout.version != claimed or rollout.state != FlagRollout.State.RUNNING:
            return  # a control or another delivery moved on while we read (or the flag was deleted)
        _finish(rollout, counters, error)


def _place(flag: Flag, environment: Environment) -> Any:
    """Where the flag's service runs its replicas in `environment`, for a rollout that reads all of them."""
    from monitoring import replicas

    try:
        return replicas.place_of(flag.service, environment, instead="give the rollout the URL of its metrics")
    except ValidationError as error:
        raise MetricsUnreadable(" ".join(error.messages)) from error


def _finish(rollout: FlagRollout, counters: dict[str, Any] | None, error: str) -> None:
    if rollout.step < 0:  # the first step needs no analysis; what was counted before is the comparison's "before"
        rollout.counters = rollout.started_counters = counters or {}
        if counters is None:
            _event(
                rollout,
                f"Metrics could not be read at the start ({error}): the first analysis has nothing from "
                "before the rollout to compare with.",
                level="warning",
            )
        _advance(rollout)
        return
    if counters is None:
        _inconclusive(rollout, [f"metrics could not be read: {error}"], {})
        return
    observation, comparison = observe(rollout, counters)
    thresholds = analysis.Thresholds()
    verdict = analysis.evaluate(observation, thresholds, analysis.Evidence.from_dict(rollout.evidence))
    at = f"{rollout.percent:g} %"
    figures = {"comparison": comparison, **verdict.figures}
    measured = _measured(figures)
    if verdict.result == "fail":
        _event(
            rollout,
            f"Analysis at {at} ({comparison}) failed: {'; '.join(verdict.reasons)}.{measured}",
            level="error",
            **figures,
        )
        _roll_back(rollout, "; ".join(verdict.reasons))
        return
    if verdict.result == "inconclusive":
        _inconclusive(rollout, verdict.reasons, figures)
        return
    _event(rollout, f"Analysis at {at} ({comparison}) passed: {'; '.join(verdict.reasons)}.{measured}", **figures)
    rollout.evidence = figures.get("evidence") or rollout.evidence
    rollout.counters, rollout.inconclusive = counters, 0
    if rollout.step == len(rollout.steps) - 1:
        _end(rollout, FlagRollout.State.SUCCEEDED, f"Released: {rollout.variant} serves everyone.")
        return
    _advance(rollout)


def _measured(figures: dict[str, Any]) -> str:
    """What the window measured, for its timeline line: each side's requests, error rate and (with a histogram) p95."""
    parts = []
    for side in ("canary", "baseline"):
        found = figures.get(side)
        if not found or not found.get("requests"):
            continue
        text = f"{side} {found['requests']:,} requests, {analysis.percent(found['error_rate'] or 0.0)} errors"
        if found.get("p95_ms") is not None:
            text += f", p95 {found['p95_ms']:.0f} ms"
        parts.append(text)
    return f" Measured: {'; '.join(parts)}." if parts else ""


def _advance(rollout: FlagRollout) -> None:
    rollout.step += 1
    rollout.version += 1
    _serve(rollout, rollout.percent)
    _schedule(rollout, rollout.interval_seconds)
    rollout.save()
    _event(
        rollout,
        f"Step {rollout.step + 1} of {len(rollout.steps)}: {rollout.percent:g} % get {rollout.variant}; analysis in "
        f"{rollout.interval_seconds} s.",
    )


def _inconclusive(rollout: FlagRollout, reasons: list[str], figures: dict[str, Any]) -> None:
    rollout.inconclusive += 1
    text = "; ".join(reasons)
    if rollout.inconclusive >= MAX_INCONCLUSIVE:
        _event(
            rollout, f"Analysis inconclusive {rollout.inconclusive} times in a row: {text}.", level="error", **figures
        )
        _roll_back(rollout, f"no usable analysis in {MAX_INCONCLUSIVE} windows ({text})")
        return
    _event(
        rollout,
        f"Analysis inconclusive ({text}); waiting another {rollout.interval_seconds} s.",
        level="warning",
        **figures,
    )
    rollout.version += 1
    _schedule(rollout, rollout.interval_seconds)
    rollout.save()


def _control(rollout_id: int, allowed: tuple[str, ...], verb: str) -> FlagRollout:
    rollout = FlagRollout.objects.select_for_update().select_related("flag__service", "environment").get(pk=rollout_id)
    if rollout.state not in allowed:
        raise Conflict(f"This rollout is {rollout.get_state_display().lower()}; it cannot be {verb}.")
    return rollout


@transaction.atomic
def rollout_pause(*, rollout_id: int, actor: Any) -> FlagRollout:
    """Hold the rollout at its current percentage; nothing is analysed or stepped until it resumes."""
    rollout = _control(rollout_id, (FlagRollout.State.RUNNING,), "paused")
    rollout.state, rollout.version, rollout.next_run_at = FlagRollout.State.PAUSED, rollout.version + 1, None
    rollout.save()
    _event(rollout, f"Paused at {rollout.percent:g} %.", actor=actor)
    event_record(actor=actor, action="flag_rollout.paused", target=rollout, service_id=rollout.flag.service_id)
    return rollout


@transaction.atomic
def rollout_resume(*, rollout_id: int, actor: Any) -> FlagRollout:
    """Go on: the current step is analysed now, over everything since it began."""
    rollout = _control(rollout_id, (FlagRollout.State.PAUSED,), "resumed")
    rollout.state, rollout.version = FlagRollout.State.RUNNING, rollout.version + 1
    _schedule(rollout, 0)
    rollout.save()
    _event(rollout, f"Resumed at {rollout.percent:g} %.", actor=actor)
    event_record(actor=actor, action="flag_rollout.resumed", target=rollout, service_id=rollout.flag.service_id)
    return rollout


@transaction.atomic
def rollout_promote(*, rollout_id: int, actor: Any) -> FlagRollout:
    """Skip the remaining steps: the variant serves everyone now."""
    rollout = _control(rollout_id, FlagRollout.ACTIVE, "promoted")
    rollout.step = len(rollout.steps) - 1
    _serve(rollout, 100.0, actor=actor)
    _end(rollout, FlagRollout.State.SUCCEEDED, f"Promoted: {rollout.variant} serves everyone.", actor=actor)
    return rollout


@transaction.atomic
def rollout_abort(*, rollout_id: int, actor: Any) -> FlagRollout:
    """Stop and go back to the setting as it was before the rollout."""
    rollout = _control(rollout_id, FlagRollout.ACTIVE, "aborted")
    _roll_back(rollout, "aborted by hand", state=FlagRollout.State.ABORTED, actor=actor)
    return rollout


def rollouts_stop(*, flag: Flag, actor: Any, reason: str, environment: Environment | None = None) -> int:
    """End every active rollout of `flag` (in `environment`, or everywhere) where it stands, touching no setting (the
    caller has set them): after the kill switch, or a person's own change to the setting, no step may overwrite it.
    Runs in the caller's transaction."""
    stopped = 0
    active = FlagRollout.objects.select_for_update().select_related("flag", "environment")
    active = active.filter(flag=flag, state__in=FlagRollout.ACTIVE)
    if environment is not None:
        active = active.filter(environment=environment)
    for rollout in active:
        _end(rollout, FlagRollout.State.ABORTED, reason, actor=actor, level="error")
        stopped += 1
    return stopped


def rollouts_sweep() -> int:
    """Enqueue every running rollout that is due (its wait is over, or its worker's lease ran out)."""
    due = FlagRollout.objects.filter(state=FlagRollout.State.RUNNING, next_run_at__lte=timezone.now())
    count = 0
    for rollout_id, version in due.values_list("pk", "version"):
        from flags import tasks

        tasks.rollout_step.delay(rollout_id, version)
        count += 1
    return count
