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


def test_the_shipped_compare_scenario_tells_its_whole_story_in_under_a_minute():
    """The lab test plays compare.toml with its times shortened; these are the shipped times: TCP gives up while
    Wi-Fi is still down, MPTCP has bytes left to take Wi-Fi back, and by the shaped rates it ends within 60 s."""
    sc = scenario.load("compare")
    assert sc.compare_tcp and sc.period_s == 0 and sc.idle_timeout_s is not None and sc.download_size is not None
    (down, step_down), (up, step_up) = sc.steps_between(0, 600)
    assert (step_down.action, step_down.iface, step_up.action, step_up.iface) == \
        ("link_down", "wlan0", "link_up", "wlan0")
    assert down + sc.idle_timeout_s + 3 <= up           # TCP has given up, with seconds to spare, when Wi-Fi returns
    wifi, cell = (sc.rate_mbit[i] or 0 for i in ("wlan0", "wwan0"))
    size_mbit = sc.download_size * 8 / 1e6
    # MPTCP at most at both rates before Wi-Fi returns: over 5 MB still to come then, for Wi-Fi to carry.
    assert size_mbit - (down * (wifi + cell) + (up - down) * cell) > 5 * 8
    # ... and at least at 90 % of cellular plus half of Wi-Fi (TCP takes the rest) until the drop, cellular
    # through the outage, both after: the end within a minute.
    left = size_mbit - 0.9 * (down * (cell + wifi / 2) + (up - down) * cell)
    assert up + left / (0.9 * (wifi + cell)) < 60
