"""The compose file and the Dockerfiles, checked without a Docker engine (none in CI).

The compose file is loaded as YAML (merge keys resolved); its ``genft-search`` commands are parsed by
the CLI's own argparse parser and its ``ray start`` commands by Ray's own click command, so a renamed
flag fails here rather than in a container. The Dockerfiles' ``COPY`` sources must exist and reach the
build context, and every ``pip install`` that resolves dependencies installs from ``constraints.txt``.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from genft_search import cli

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.cuda"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _expand(text: str) -> str:
    """Compose's ``$$`` escape, then the shell's ``${VAR:-default}`` and ``$VAR`` (as placeholders)."""
    text = text.replace("$$", "$")
    text = re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", text)
    return re.sub(r"\$\{?(\w+)\}?", r"VALUE_OF_\1", text)


def _commands(service: dict[str, Any]) -> list[list[str]]:
    """The programs a service's ``command`` runs (``sh -c`` split on ``&&``, ``exec`` dropped)."""
    command = service.get("command")
    if command is None:
        return []
    if isinstance(command, str):
        command = shlex.split(command)
    if command[:2] == ["sh", "-c"]:
        out = []
        for part in command[2].split("&&"):
            words = shlex.split(_expand(part))
            out.append(words[1:] if words[:1] == ["exec"] else words)
        return out
    return [[_expand(word) for word in command]]


def _parses_as_genft_search(words: list[str]) -> Any:
    try:
        return cli._parser().parse_args(words[1:])
    except SystemExit as exc:  # argparse: an unknown flag or a missing argument
        raise AssertionError(f"not a valid command: {shlex.join(words)}") from exc


def _parses_as_ray_start(words: list[str]) -> dict[str, Any]:
    from ray.scripts.scripts import cli as ray_cli

    assert words[:2] == ["ray", "start"], words
    ctx = ray_cli.commands["start"].make_context("start", list(words[2:]))
    return ctx.params


def test_services_fit_together(compose):
    services = compose["services"]
    assert {"postgres", "schema", "ray-head", "ray-worker", "ray-worker-gpu", "driver",
            "dashboard"} <= set(services)
    volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        for dep in service.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if not source.startswith(("$", ".", "/")):
                assert source in volumes, f"{name}: volume {source} is not declared"
        build = service.get("build")
        if build:
            assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file(), name
    assert services["ray-worker"]["profiles"] == ["cpu"]
    gpu = services["ray-worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    # one shared runs volume on every Ray node and the driver: checkpoints any node can resume from
    for name in ("ray-head", "ray-worker", "ray-worker-gpu", "driver"):
        assert "runs:/shared/runs" in services[name]["volumes"], name


def test_every_command_parses_with_the_real_parsers(compose):
    seen = {"genft-search": 0, "ray": 0}
    for service in compose["services"].values():
        for words in _commands(service):
            if words[0] == "genft-search":
                _parses_as_genft_search(words)
                seen["genft-search"] += 1
            elif words[0] == "ray":
                _parses_as_ray_start(words)
                seen["ray"] += 1
    assert seen["genft-search"] >= 2 and seen["ray"] >= 3


def test_the_driver_submits_to_the_head_and_the_dashboard_is_the_cli(compose):
    services = compose["services"]
    head = _parses_as_ray_start(_commands(services["ray-head"])[0])
    assert head["head"] and head["port"] == 6379 and head["block"]
    for name in ("ray-worker", "ray-worker-gpu"):
        worker = _parses_as_ray_start(_commands(services[name])[0])
        assert worker["address"] == "ray-head:6379" and worker["block"], name
    joined, run = _commands(services["driver"])
    node = _parses_as_ray_start(joined)
    assert node["address"] == "ray-head:6379" and node["num_cpus"] == 0 and node["num_gpus"] == 0
    args = _parses_as_genft_search(run)
    assert (args.command, args.address, args.runs_dir) == ("run", "ray-head:6379", "/shared/runs")
    (dash,) = _commands(services["dashboard"])
    args = _parses_as_genft_search(dash)
    assert args.command == "dashboard" and args.host == "0.0.0.0"
    # the store's password is only ever PGPASSWORD, never inside the URL
    for name in ("driver", "dashboard", "schema"):
        env = services[name]["environment"]
        assert "@" in env["GENFT_STORAGE"] and ":${POSTGRES_PASSWORD" not in env["GENFT_STORAGE"]
        assert env["PGPASSWORD"].startswith("${POSTGRES_PASSWORD")


def _compose_lines() -> list[str]:
    text = (DOCKER / "README.md").read_text() + COMPOSE.read_text()
    return [m.group(0) for m in re.finditer(r"docker compose -f docker/compose\.yaml[^\n`]*", text)]


def test_documented_compose_lines_name_existing_services_and_profiles(compose):
    services = compose["services"]
    lines = _compose_lines()
    assert len(lines) >= 6
    for line in lines:
        words = shlex.split(line.split("#", 1)[0])[4:]
        profiles = set()
        names = []
        i = 0
        while i < len(words):
            word = words[i]
            if word in ("--profile", "--scale"):
                if word == "--profile":
                    profiles.add(words[i + 1])
                else:
                    assert words[i + 1].split("=", 1)[0] in services, line
                i += 2
                continue
            if not word.startswith("-") and word not in ("up", "run", "down"):
                names.append(word)
            i += 1
        for name in names:
            assert name in services, f"{line}: no service {name}"
            wanted = set(services[name].get("profiles") or [])
            assert not wanted or wanted & profiles, f"{line}: {name} needs --profile {sorted(wanted)}"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(ln for ln in dockerfile.read_text().splitlines()
                                         if not ln.lstrip().startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            head, _, rest = line.strip().partition(" ")
            out.append((head.upper(), rest.strip()))
    return out


def _ignored(path: str, dockerfile: Path) -> bool:
    patterns = [ln.strip() for ln in Path(f"{dockerfile}.dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_exist_and_installs_use_the_lock(dockerfile):
    copied = []
    pips = 0
    for instruction, args in _instructions(dockerfile):
        if instruction == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            for source in words[:-1]:
                assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}: not in the repository"
                assert not _ignored(source, dockerfile), f"{dockerfile.name}: COPY {source} is .dockerignored"
                copied.append(source)
        elif instruction == "RUN":
            for command in args.split("&&"):
                words = shlex.split(command)
                if words[:2] != ["pip", "install"] or "--no-deps" in words:
                    continue
                pips += 1
                assert "constraints.txt" in copied, f"{dockerfile.name}: pip install before COPY of the lock"
                assert "-c constraints.txt" in " ".join(words), f"{dockerfile.name}: {command.strip()}"
    assert pips >= 2
    assert {"constraints.txt", "pyproject.toml", "genft_search", "trainables"} <= set(copied)


def test_the_makefile_installs_with_the_same_lock():
    makefile = (REPO / "Makefile").read_text()
    assert "pip install -q -c constraints.txt -e '.[dev]'" in makefile
