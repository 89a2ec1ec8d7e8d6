"""Scorecards as code: files with tests that must pass, per-item errors, missing scorecards, the starter set."""

from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command

from audit.models import AuditEvent
from scorecards import services, sync
from scorecards.models import Scorecard
from tests.scorecards.conftest import basic

pytestmark = pytest.mark.django_db


def write(path: Path, *documents: object) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def test_a_scorecard_whose_tests_pass_is_accepted_and_one_whose_tests_fail_is_not(tmp_path) -> None:
    good = basic(tests=[{"name": "documented", "facts": {"service": {"on_call_url": ""}}, "expect": "Silver"}])
    bad = basic(
        name="wrong",
        tests=[
            {"name": "claims gold", "facts": {"service": {"on_call_url": ""}}, "expect": "Gold"},
            {"name": "bad expect", "facts": {}, "expect": "Platinum"},
        ],
    )
    write(tmp_path / "cards.yaml", {"scorecards": [good, bad]})

    report = sync.scorecard_sync(root=tmp_path)

    assert report.created == ["basics"]
    assert Scorecard.objects.get(name="basics").source_path == "cards.yaml"
    assert not Scorecard.objects.filter(name="wrong").exists()
    messages = [message for _file, name, message in report.errors if name == "wrong"]
    assert any("claims gold" in m and "expected Gold, got Silver" in m and "on-call" in m for m in messages)
    assert any("bad expect" in m and "one of none, skip, Bronze, Silver, Gold" in m for m in messages)


def test_a_refused_change_keeps_the_previous_definition(tmp_path) -> None:
    path = write(tmp_path / "basics.yaml", basic())
    sync.scorecard_sync(root=tmp_path)
    before = Scorecard.objects.get(name="basics").digest
    broken = basic()
    broken["levels"][0]["rules"][0]["rule"] = "service.runbookz >= 1"
    write(path, broken)
    report = sync.scorecard_sync(root=tmp_path)
    assert Scorecard.objects.get(name="basics").digest == before
    (file, name, message) = report.errors[0]
    assert (file, name) == ("basics.yaml", "basics")
    assert message.startswith("levels[0].rules[0].rule: service.runbookz: the fact document has no such field")
    assert sync.scorecard_sync(root=tmp_path).unchanged == []  # still broken, still reported
    write(path, basic())
    assert sync.scorecard_sync(root=tmp_path).unchanged == ["basics"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"levels": []}, "levels: give a list of levels"),
        ({"filter": "change.strategy == 'canary'"}, "filter: change: a scorecard judges a service with no change"),
        ({"catalogFilter": {"tier": 9}}, "catalogFilter.tier:"),
        ({"catalogFilter": {"colour": "red"}}, "catalogFilter.colour: unknown filter"),
        ({"name": "Not A Slug"}, "name:"),
        ({"extra": 1}, "Unknown field(s) extra"),
    ],
)
def test_bad_definitions_say_what_to_fix(world, change, expected) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as caught:
        services.scorecard_save(user=world.staff, raw=basic(**change))
    assert any(expected in message for message in caught.value.messages), caught.value.messages


def test_rules_share_governance_limits(world) -> None:  # type: ignore[no-untyped-def]
    raw = basic()
    raw["levels"][0]["rules"][0]["rule"] = "service.tags.all(a, service.tags.all(b, service.tags.all(c, true)))"
    with pytest.raises(ValidationError) as caught:
        services.scorecard_save(user=world.staff, raw=raw)
    assert "nests comprehensions 3 deep" in " ".join(caught.value.messages)
    raw["levels"][0]["rules"][0]["rule"] = "true || " * 400 + "true"
    with pytest.raises(ValidationError) as caught:
        services.scorecard_save(user=world.staff, raw=raw)
    assert "the limit is 2000" in " ".join(caught.value.messages)


def test_only_platform_admins_save_scorecards(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionDenied):
        services.scorecard_save(user=world.owner, raw=basic())


def test_a_scorecard_gone_from_its_files_is_disabled_not_deleted(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path / "a.yaml", basic())
    write(tmp_path / "b.yaml", basic(name="other"))
    sync.scorecard_sync(root=tmp_path)
    (tmp_path / "b.yaml").unlink()
    report = sync.scorecard_sync(root=tmp_path)
    assert report.missing == ["other"]
    other = Scorecard.objects.get(name="other")
    assert other.missing_since is not None and not other.enabled
    assert AuditEvent.objects.filter(action="scorecard.missing", object_id=str(other.pk)).exists()


def test_bad_files_are_reported_and_the_rest_sync(tmp_path) -> None:
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    (tmp_path / "alias.yaml").write_text("a: &x {name: y}\nscorecards: [*x]\n")
    write(tmp_path / "good.yaml", basic())
    report = sync.scorecard_sync(root=tmp_path)
    assert report.created == ["basics"]
    files = {file for file, _name, _message in report.errors}
    assert files == {"broken.yaml", "alias.yaml"}


def test_the_starter_scorecards_sync_cleanly(capsys) -> None:
    call_command("scorecard_sync", str(settings.SCORECARDS["DIR"]))
    out = capsys.readouterr().out
    assert "created production-readiness" in out and "problem" not in out
    card = Scorecard.objects.get(name="production-readiness")
    assert [level["name"] for level in card.levels] == ["Bronze", "Silver", "Gold"]
    assert "owner-verified" in card.rules()
