"""Scoring: levels reached rule by rule, errors that fail and say why, scope, history by day, bulk and single."""

from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Service
from scorecards import definition, services
from scorecards.models import Score, ScoreDay
from techdocs.models import ADR, Runbook
from tests.factories import service_make
from tests.scorecards.conftest import basic

pytestmark = pytest.mark.django_db


def production(owner, **fields):  # type: ignore[no-untyped-def]
    return service_make(owner=owner, lifecycle=Service.Lifecycle.PRODUCTION, **fields)


def test_a_level_needs_its_rules_and_every_rule_below(world, scorecard) -> None:  # type: ignore[no-untyped-def]
    bare = production(world.owner_team)
    bronze = production(world.owner_team)
    Runbook.objects.create(service=bronze, slug="restart", title="Restart")
    skipped_silver = production(world.owner_team, on_call_url="https://oncall.example.com/x")
    Runbook.objects.create(service=skipped_silver, slug="restart", title="Restart")  # Bronze; no ADR; has Gold's rule
    gold = production(world.owner_team, on_call_url="https://oncall.example.com/y")
    Runbook.objects.create(service=gold, slug="restart", title="Restart")
    ADR.objects.create(service=gold, number=1, title="Use Postgres")

    report = services.scores_compute()

    scores = {score.service_id: score for score in Score.objects.filter(scorecard=scorecard)}
    assert (scores[bare.pk].rank, scores[bare.pk].level) == (0, "")
    assert (scores[bronze.pk].rank, scores[bronze.pk].level) == (1, "Bronze")
    assert (scores[skipped_silver.pk].rank, scores[skipped_silver.pk].level) == (1, "Bronze")  # Gold's rule alone
    assert [item["rule"] for item in scores[skipped_silver.pk].failing] == ["adr"]
    assert (scores[gold.pk].rank, scores[gold.pk].level, scores[gold.pk].failing) == (3, "Gold", [])
    assert (scores[gold.pk].passed, scores[gold.pk].total) == (3, 3)
    assert world.service.pk not in scores  # experimental: out of the scorecard's filter
    assert report.scores == 4


def test_a_rule_that_errors_fails_and_says_why(world) -> None:  # type: ignore[no-untyped-def]
    raw = basic()
    # Valid on the sample document (tags has an item there), an error for a service without tags.
    raw["levels"][0]["rules"].append(
        {"key": "first-tag", "name": "First tag", "rule": "service.tags[0] != 'legacy'", "why": "w", "fix": "f"}
    )
    scorecard = services.scorecard_save(user=world.staff, raw=raw)
    service = production(world.owner_team)
    Runbook.objects.create(service=service, slug="restart", title="Restart")

    services.scores_compute(scorecards=[scorecard], service_ids=[service.pk])

    score = Score.objects.get(scorecard=scorecard, service=service)
    assert score.rank == 0  # the erroring Bronze rule fails Bronze
    failing = {item["rule"]: item["error"] for item in score.failing}
    assert "first-tag" in failing and failing["first-tag"]  # it says why
    assert failing.get("runbook") is None


def test_history_keeps_one_row_per_service_and_day(world, scorecard) -> None:  # type: ignore[no-untyped-def]
    service = production(world.owner_team)
    yesterday = timezone.now() - timedelta(days=1)
    services.scores_compute(service_ids=[service.pk], at=yesterday)
    Runbook.objects.create(service=service, slug="restart", title="Restart")
    services.scores_compute(service_ids=[service.pk])
    services.scores_compute(service_ids=[service.pk])  # twice the same day: still one row

    days = list(ScoreDay.objects.filter(scorecard=scorecard, service=service).order_by("day"))
    assert [(day.day, day.rank, day.level) for day in days] == [
        (services.org_day(yesterday), 0, ""),
        (services.org_day(timezone.now()), 1, "Bronze"),
    ]


def test_a_service_leaving_the_scope_loses_its_score_not_its_history(world, scorecard) -> None:  # type: ignore[no-untyped-def]
    service = production(world.owner_team)
    services.scores_compute(service_ids=[service.pk])
    Service.objects.filter(pk=service.pk).update(lifecycle=Service.Lifecycle.DEPRECATED)
    report = services.scores_compute(service_ids=[service.pk])
    assert report.removed == 1
    assert not Score.objects.filter(service=service).exists()
    assert ScoreDay.objects.filter(service=service).count() == 1


def test_a_catalog_filter_narrows_the_scope(world) -> None:  # type: ignore[no-untyped-def]
    tier_one = production(world.owner_team, tier=1)
    tier_three = production(world.other_team, tier=3)
    scorecard = services.scorecard_save(user=world.staff, raw=basic(catalogFilter={"tier": 1}))
    services.scores_compute(scorecards=[scorecard])
    assert set(Score.objects.filter(scorecard=scorecard).values_list("service_id", flat=True)) == {tier_one.pk}
    assert tier_three.pk not in set(Score.objects.values_list("service_id", flat=True))


def test_scoring_a_batch_takes_a_constant_number_of_queries(  # type: ignore[no-untyped-def]
    world, scorecard, django_assert_max_num_queries
) -> None:
    for _ in range(12):
        service = production(world.owner_team)
        Runbook.objects.create(service=service, slug="restart", title="Restart")
        service.tags.create(name=f"t-{service.pk}")
    with django_assert_max_num_queries(14):
        report = services.scores_compute()
    assert report.scores == 12


def test_evaluate_reports_the_filter_and_levels_without_the_database() -> None:
    checked = definition.definition_check(basic())
    import cel

    from governance.sync import facts_fill

    outcome = definition.evaluate(checked, cel.Context(facts_fill({"service": {"adrs": 0}})))
    assert (outcome.applies, outcome.rank, outcome.level) == (True, 1, "Bronze")
    outcome = definition.evaluate(checked, cel.Context(facts_fill({"service": {"lifecycle": "experimental"}})))
    assert not outcome.applies
