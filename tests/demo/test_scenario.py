"""Demo scenarios: every shipped file loads, and timed steps repeat as the period says."""

from itertools import pairwise

import pytest

from mptop.demo import scenario


def test_required_scenarios_ship():
    assert {"handover", "aggregate", "backup", "fallback", "flaky"} <= set(scenario.builtin_names())


@pytest.mark.parametrize("name", scenario.builtin_names())
def test_each_builtin_loads_with_known_actions(name):
    sc = scenario.load(name)
    assert sc.name == name
    assert set(sc.rate_mbit) <= {"wlan0", "wwan0"}
    assert all(step.action in scenario.ACTIONS for step in sc.steps)


def test_handover_first_drop_within_ten_seconds_then_every_twenty():
    sc = scenario.load("handover")
    downs = [t for t, step in sc.steps_between(0, 60) if step.action == "link_down"]
    assert downs[0] <= 10
    assert [b - a for a, b in pairwise(downs)] == [20, 20]
    ups = [t for t, step in sc.steps_between(0, 60) if step.action == "link_up"]
    assert [u - d for d, u in zip(downs, ups, strict=True)] == [5, 5, 5]


def test_steps_between_is_half_open_so_no_step_plays_twice():
    sc = scenario.load("handover")
    ticks = [i * 0.25 for i in range(0, 241)]
    played = [t for a, b in pairwise(ticks) for t, _ in sc.steps_between(a, b)]
    assert played == [t for t, _ in sc.steps_between(0, 60)]
    assert len(played) == len(set(played))


def test_one_shot_scenario_plays_once():
    sc = scenario.parse({"name": "x", "period_s": 0,
                         "steps": [{"at_s": 1, "action": "link_down", "iface": "wlan0"}]})
    assert len(sc.steps_between(0, 100)) == 1


@pytest.mark.parametrize("bad", [
    {"title": "no name"},
    {"name": "x", "steps": [{"at_s": 1, "action": "explode", "iface": "wlan0"}]},
    {"name": "x", "steps": [{"action": "link_down", "iface": "wlan0"}]},
    {"name": "x", "steps": [{"at_s": 1, "action": "link_down", "iface": "eth0"}]},    # not a lab path
])
def test_malformed_scenarios_raise_one_error(bad):
    with pytest.raises(scenario.ScenarioError):
        scenario.parse(bad)


def test_unknown_name_lists_the_choices():
    with pytest.raises(scenario.ScenarioError, match="handover"):
        scenario.load("nope")


def test_scenario_file_by_path(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('name = "mine"\nperiod_s = 5\n[[steps]]\nat_s = 1\naction = "link_up"\niface = "wwan0"\n')
    assert scenario.load(str(f)).steps[0].iface == "wwan0"
    with pytest.raises(scenario.ScenarioError, match="cannot read"):
        scenario.load(str(tmp_path / "missing.toml"))
