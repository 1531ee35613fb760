"""Real studies for the report tests, and a headless Chromium (installed from apt when missing)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support.ablation_studies import make_ablation_studies
from tests.support.search_studies import make_search_study

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="session")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store holding a search study (search/dtd) and a two-task ablation (abl/*)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'studies.db'}"
    make_search_study(url)
    make_ablation_studies(url, "abl", ["clevr_count", "kitti"], root="/data/vtab-1k", seeds=(1, 2))
    return url


def _find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium; installs Debian's ``chromium`` with apt-get when none is there.

    Outside CI a machine without apt (or without the rights to use it) skips the browser tests; in CI
    (``CI`` set) that is a failure, since the report must be checked in a real browser there.
    """
    found = _find_chromium()
    if found:
        return found
    in_ci = bool(os.environ.get("CI"))
    apt = shutil.which("apt-get")
    reason = "no Chromium and no apt-get to install it"
    if apt:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        install = [*sudo, apt, "install", "-y", "--no-install-recommends", "chromium"]
        steps = ([install], [[*sudo, apt, "update"], install])  # the second try refreshes stale lists
        for commands in steps:
            try:
                for command in commands:
                    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
                break
            except (subprocess.SubprocessError, OSError) as exc:
                reason = f"apt-get install chromium failed: {exc}"
        found = _find_chromium()
        if found:
            return found
    if in_ci:
        pytest.fail(f"CI needs a headless Chromium for the report tests: {reason}")
    pytest.skip(f"headless Chromium unavailable: {reason}")
