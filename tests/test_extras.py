"""`pip install 'adaprune[all]'` installs every optional dependency: each extra's packages are in `all`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML (tomllib)")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# Tool sets, not features: `all` is for users, so it need not hold pytest or ruff.
TOOL_EXTRAS = {"all", "dev", "test"}


def package(requirement: str) -> str:
    """The distribution name with its extras ("ray[data]>=2.10" -> "ray[data]"), normalised."""
    m = re.match(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?", requirement)
    assert m, requirement
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() + (m.group(2) or "")


def test_all_holds_every_extras_packages():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    in_all = {package(r) for r in extras["all"]}
    missing = {name: sorted(package(r) for r in reqs if package(r) not in in_all)
               for name, reqs in extras.items() if name not in TOOL_EXTRAS}
    assert {k: v for k, v in missing.items() if v} == {}
    # The test's own reading: ray comes with its data extra, as the ray extra asks.
    assert package("ray[data]>=2.10") == "ray[data]" and package("faiss_cpu>=1") == "faiss-cpu"
