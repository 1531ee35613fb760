"""An installed wheel (not the editable checkout) carries the paper's data: imported from outside the
checkout, its settings, results and ablations are all there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: what the wheel is built from (pyproject's sources; nothing else of the checkout goes in)
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "genft_search", "trainables")

PROBE = """
import json, genft_search
from genft_search.paper import paper_setting
from genft_search.paper import paper_benchmark, paper_result, paper_ablation
print(json.dumps({
    "file": genft_search.__file__,
    "setting": paper_setting("vtab1k", "dsprites_loc"),
    "result": paper_result("vtab1k", "dsprites_loc"),
    "ablation": paper_ablation("fgvc", "without_shared", "stanford_cars"),
    "tasks": len(paper_benchmark("vtab1k").tasks),
}))
"""


def test_installed_wheel_has_the_paper_data(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    wheels, target, outside = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    outside.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
                   check=True, cwd=tmp_path, capture_output=True)
    (wheel,) = wheels.glob("genft_search-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, cwd=tmp_path, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=outside, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert Path(out["file"]).is_relative_to(target)  # the wheel's copy, not the checkout
    assert out["setting"]["shared_dim"] == 100 and out["setting"]["sigma1"] == "identity"
    assert out["result"][0] == 82.1 and out["result"][1].startswith("test top-1")
    assert out["ablation"] == 60.0 and out["tasks"] == 19
