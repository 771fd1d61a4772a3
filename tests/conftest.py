"""Shared fixtures: real two-path MPTCP labs (`lab`, `make_lab`) from :mod:`mptop.lab`.

A lab that cannot be built skips the test, or fails it when MPTOP_REQUIRE_LAB=1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest

from mptop.lab import Lab, LabConfig, LabUnavailable


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("MPTOP_REQUIRE_LAB") == "1":
        pytest.fail(f"lab required (MPTOP_REQUIRE_LAB=1) but unavailable: {reason}", pytrace=False)
    pytest.skip(f"lab unavailable: {reason}")


@pytest.fixture(autouse=True)
def own_config_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """mptop keeps --theme/--units/--interval in $XDG_CONFIG_HOME/mptop/config.toml: every test (and the
    mptop processes it starts) gets an empty one, never the user's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))


@pytest.fixture
def lab_unavailable() -> Callable[[str], NoReturn]:
    """For tests that build labs themselves: skip (or fail under MPTOP_REQUIRE_LAB=1) with reason."""
    return unavailable


@pytest.fixture
def make_lab() -> Iterator[Callable[..., Lab]]:
    """Factory: ``make_lab(rate_mbit={"wlan0": 40}, client_endpoints="subflow")`` -> started Lab."""
    labs: list[Lab] = []

    def factory(**config: Any) -> Lab:
        lab = Lab(LabConfig(**config))
        labs.append(lab)
        try:
            return lab.start()
        except LabUnavailable as e:
            unavailable(str(e))

    yield factory
    for lab in labs:
        lab.stop()


@pytest.fixture
def lab(make_lab: Callable[..., Lab]) -> Lab:
    """A started default lab: unshaped, no client endpoints (2 subflows per download)."""
    return make_lab()


LAB_FIXTURES = {"lab", "make_lab", "lab_unavailable"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of a ``*_lab.py`` file is a lab test, marked or not; a test elsewhere that asks for a lab
    is a mistake (pure files must run in seconds without root), named at collection."""
    for item in items:
        if item.path.name.endswith("_lab.py"):
            if item.get_closest_marker("lab") is None:
                item.add_marker(pytest.mark.lab)
        elif LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            raise pytest.UsageError(f"{item.nodeid} uses a lab fixture: move it to a test_<thing>_lab.py file")
