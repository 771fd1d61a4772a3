"""mptop.core's docstring is its module map: one line per module, no line for a module that is gone."""

from __future__ import annotations

import pkgutil
import re

import mptop.core


def test_the_module_map_lists_every_core_module_once() -> None:
    modules = sorted(m.name for m in pkgutil.iter_modules(mptop.core.__path__))
    listed = re.findall(r"^    (\w+) +\S", mptop.core.__doc__ or "", re.MULTILINE)
    assert sorted(listed) == modules
