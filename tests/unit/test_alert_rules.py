"""The KPI alert rules supervisors write (bot/alerts.yml): the shipped file loads, a wrong rule is
refused with what to fix, an edit is picked up and a broken edit keeps the previous rules, and
the webhook's settings need their HMAC secret."""

from __future__ import annotations

import os

import pytest

from bot.analytics.alerts import DEFAULT_RULES, AlertRulesError, RuleFile, load_rules
from bot.settings import Settings, SettingsError

GOOD = "rules:\n  - {id: caida, kind: containment_drop, points: 10, min_volume: 30}\n"


def write(tmp_path, text: str):
    path = tmp_path / "alerts.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_rules_load():
    rules = load_rules(DEFAULT_RULES)
    assert {rule.kind for rule in rules} == {
        "containment_drop",
        "handoff_rise",
        "csat_below",
        "fallback_above",
    }
    assert all(rule.min_volume >= 1 for rule in rules)


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ("{id: a, kind: containment_falls, points: 10, min_volume: 3}", "kind"),
        ("{id: a, kind: containment_drop, points: 10}", "min_volume"),
        ("{id: a, kind: containment_drop, points: 10, min_volume: 0}", "min_volume"),
        ("{id: a, kind: containment_drop, floor: 3, min_volume: 3}", "unknown key"),
        ("{id: a, kind: csat_below, floor: 7, min_volume: 3}", "between 1 and 5"),
        ("{id: a, kind: fallback_above, ceiling: 150, min_volume: 3}", "at most 100"),
        ("{id: a, kind: handoff_rise, points: mucho, min_volume: 3}", "points"),
        ("{kind: handoff_rise, points: 5, min_volume: 3}", "id"),
        ("{id: a, kind: handoff_rise, points: 5, min_volume: 3, intent: '<b>'}", "intent"),
    ],
)
def test_a_wrong_rule_is_refused_with_what_to_fix(tmp_path, rule, said):
    with pytest.raises(AlertRulesError, match=said):
        load_rules(write(tmp_path, f"rules:\n  - {rule}\n"))


def test_two_rules_with_one_id_are_refused(tmp_path):
    with pytest.raises(AlertRulesError, match="share an id"):
        load_rules(write(tmp_path, GOOD + "  - {id: caida, kind: csat_below, floor: 3, min_volume: 5}\n"))


def test_an_edit_is_read_again_and_a_broken_one_keeps_the_rules_in_force(tmp_path):
    path = write(tmp_path, GOOD)
    rules = RuleFile(path)
    assert [rule.id for rule in rules.rules()] == ["caida"]
    path.write_text(GOOD + "  - {id: csat, kind: csat_below, floor: 3.5, min_volume: 5}\n", encoding="utf-8")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))  # a later modification time, whatever the disk's
    assert [rule.id for rule in rules.rules()] == ["caida", "csat"]
    path.write_text("rules: [{id: roto, kind: nada}]\n", encoding="utf-8")
    os.utime(path, ns=(1, 3_000_000_000_000_000_000))
    assert [rule.id for rule in rules.rules()] == ["caida", "csat"]


def test_the_alert_webhook_needs_its_secret_and_a_full_url():
    with pytest.raises(SettingsError, match="ALERT_WEBHOOK_SECRET"):
        Settings.from_env({"BOT_ENV": "development", "ALERT_WEBHOOK_URL": "https://hooks.example.com/kpi"})
    with pytest.raises(SettingsError, match="full URL"):
        Settings.from_env({"ALERT_WEBHOOK_URL": "hooks.example.com", "ALERT_WEBHOOK_SECRET": "s"})
    with pytest.raises(SettingsError, match="ALERT_RULES"):
        Settings.from_env({"ALERT_RULES": "no/such/alerts.yml"})
    with pytest.raises(SettingsError, match="ALERT_CHECK_INTERVAL_S"):
        Settings.from_env({"ALERT_CHECK_INTERVAL_S": "1"})
    settings = Settings.from_env({})
    assert settings.alert_webhook_url is None and settings.alert_rules is None
    assert settings.alert_check_interval_s == 300
