"""The tested dependency set: constraints.txt pins every dependency, inside the pyproject's ranges,
and the environment the tests run in is the one it describes (what `make install` gives a fresh machine).
"""

from __future__ import annotations

import os
from importlib import metadata

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.engine import REPO


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in (*project["dependencies"], *project["optional-dependencies"]["dev"])]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _lock()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]}, outside the pyproject's range {req.specifier}"


@pytest.mark.skipif(bool(os.environ.get("GENFT_UNLOCKED")),
                    reason="make test-latest: newest versions on purpose")
def test_the_test_environment_is_the_locked_one() -> None:
    """The versions under test are the locked ones (else CI would pass on a set no user gets)."""
    pins = _lock()
    differ = []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in pins and dist.version != pins[name]:
            differ.append(f"{name} {dist.version} (locked {pins[name]})")
    assert not differ, "installed versions differ from constraints.txt: " + ", ".join(sorted(differ))
