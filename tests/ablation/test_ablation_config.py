"""Ablation files: validation, base settings, variant resolution and the per-task grid study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from genft_search.ablation import (
    DEFAULT_SEEDS,
    VARIANTS,
    base_setting,
    load_ablation_config,
    parse_ablation_config,
    task_study_config,
    variant_configs,
)
from genft_search.errors import UserError
from genft_search.space import build_space

REPO = Path(__file__).resolve().parents[2]
STUDY: dict[str, Any] = {
    "name": "abl",
    "method": "genft",
    "model": {"name": "builtin", "checkpoint": "builtin"},
    "data": {"kind": "vtab1k", "root": "builtin", "tasks": ["dsprites_loc", "dsprites_ori"]},
    "fixed": {"epochs": 2, "lr": 0.01},
    "objective": {"metric": "val_top1", "direction": "maximize"},
}


def _parse(**changes: Any):
    raw = {**STUDY, **changes}
    return parse_ablation_config({k: v for k, v in raw.items() if v is not None}, "abl.yaml")


def test_defaults_are_the_papers_five_variants_over_three_seeds() -> None:
    config = _parse()
    assert (
        config.variants
        == list(VARIANTS)
        == ["full", "without_shared", "without_specific", "without_row", "without_column"]
    )
    assert config.seeds == list(DEFAULT_SEEDS) and len(config.seeds) == 3
    assert config.spec.base == "fixed"
    assert _parse(seeds=2).seeds == [42, 43]
    assert _parse(variants=["without_row", "full"]).variants == ["full", "without_row"]  # the paper's order


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"params": {"lr": {"float": [0.001, 0.1]}}}, "params"),
        ({"sampler": {"name": "tpe"}}, "sampler"),
        ({"scheduler": {"name": "asha"}}, "scheduler.name"),
        ({"base": "best"}, "from_study"),
        ({"from_study": "x"}, "from_study"),
        ({"variants": ["full", "without_everything"]}, "variants"),
        ({"variants": []}, "variants"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"seeds": 0}, "seeds"),
        ({"method": "lora"}, "method"),
        ({"base": "papr"}, "base"),
        (
            {"objective": [{"metric": "val_top1"}, {"metric": "train_loss", "direction": "minimize"}]},
            "objective",
        ),
    ],
)
def test_mistakes_are_one_line_naming_file_and_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(UserError) as info:
        _parse(**changes)
    message = str(info.value)
    assert message.startswith("abl.yaml: ") and field in message and "\n" not in message


def test_file_loading_reports_syntax_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match=r"bad\.yaml: line"):
        load_ablation_config(bad)
    with pytest.raises(UserError, match="not found"):
        load_ablation_config(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**STUDY, "base": "paper", "seeds": [7]}))
    assert load_ablation_config(good).seeds == [7]


def test_paper_base_takes_the_tasks_row_then_the_files_fixed_values() -> None:
    config = _parse(base="paper")
    base = base_setting(config, "dsprites_ori")
    # Table 8: dsprites_ori has shared 80, specific 0, lr 1e-3, epochs 100; the file fixes epochs and lr
    assert (base["shared_dim"], base["specific_dim"]) == (80, 0)
    assert (base["epochs"], base["lr"]) == (2, 0.01)
    assert "seed" not in base and "ablation" not in base
    dims = {v: (c.shared_dim, c.specific_dim) for v, c in variant_configs(config, base).items()}
    assert dims == {
        "full": (80, 0),
        "without_shared": (0, 8),
        "without_specific": (80, 0),
        "without_row": (80, 0),
        "without_column": (80, 0),
    }
    with pytest.raises(UserError, match="base: the paper reports no setting for task 'mnist'"):
        base_setting(_parse(base="paper", data={**STUDY["data"], "tasks": ["mnist"]}), "mnist")


def test_fixed_base_with_no_dims_left_is_refused() -> None:
    config = _parse(fixed={"shared_dim": 0, "specific_dim": 0}, variants=["full"])
    with pytest.raises(UserError, match=r"fixed: .*shared_dim"):
        variant_configs(config, base_setting(config, "dsprites_loc"))


def test_best_base_is_the_search_studys_best_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="search/dsprites_loc", storage=url, direction="maximize")
    study.set_user_attr(
        "config",
        {
            "method": "genft",
            "model": {"name": "builtin"},
            "data": {"kind": "vtab1k"},
            "protocol": "honest",
            "seed": 42,
            "epochs": 9,
            "sigma1": "tanh",
        },
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(
        lambda t: (
            -((t.suggest_int("shared_dim", 8, 64, step=8) - 40) ** 2) - t.suggest_int("specific_dim", 0, 4)
        ),
        n_trials=12,
    )
    best = study.best_trial.params
    config = _parse(base="best", from_study="search", storage=url)
    base = base_setting(config, "dsprites_loc")
    assert base["shared_dim"] == best["shared_dim"] and base["specific_dim"] == best["specific_dim"]
    assert base["sigma1"] == "tanh" and base["epochs"] == 2  # the search's fixed, then the file's fixed
    assert not {"method", "model", "data", "protocol", "seed"} & set(base)
    with pytest.raises(UserError, match="from_study: no study nosuch/dsprites_ori"):
        base_setting(_parse(base="best", from_study="nosuch", storage=url), "dsprites_ori")


def test_task_study_is_a_grid_over_variant_and_seed_with_the_base_fixed() -> None:
    config = _parse(base="paper", seeds=[1, 2], variants=["full", "without_shared", "without_row"])
    base = base_setting(config, "dsprites_loc")
    study = task_study_config(config, "dsprites_loc", base)
    assert study.study_name("dsprites_loc") == "abl/dsprites_loc"
    assert study.data.tasks == ["dsprites_loc"]
    assert study.sampler.name == "grid" and study.scheduler.name == "fifo"
    assert study.budget.n_trials == 6
    assert study.fixed == base
    space = build_space(study)
    assert space.grid(study.source) == {"ablation": ["full", "without_shared", "without_row"], "seed": [1, 2]}


@pytest.mark.parametrize("name", ["ablation_quickstart", "ablation_vtab_structured", "ablation_fgvc"])
def test_shipped_ablation_files_are_valid_and_have_a_base_for_every_task(name: str) -> None:
    config = load_ablation_config(REPO / "studies" / f"{name}.yaml")
    for task in config.tasks:
        base = base_setting(config, task)
        assert set(variant_configs(config, base)) == set(config.variants)
        study = task_study_config(config, task, base)
        assert study.budget.n_trials == len(config.variants) * len(config.seeds)


@pytest.mark.parametrize(
    ("changes", "expect"),
    [
        ({"variants": ["full", "without_everything"]}, "variants"),
        ({"base": "best", "from_study": "search"}, "storage: no study store at"),
        ({"fixed": {"epochs": 2, "dropout": 1.0}}, "fixed: GenFTConfig.dropout"),
        ({"fixed": {"epochs": 0, "lr": 0.01}}, "fixed.epochs: 0"),
        ({"data": {"kind": "vtab1k", "root": "/nonexistent/vtab", "tasks": ["dsprites_loc"]}}, "data"),
    ],
)
def test_ablate_refuses_before_creating_the_store(changes: dict[str, Any], expect: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``ablate``'s checks all run before the store exists: exit 2, one line, no store file."""
    from genft_search.cli import main

    db = tmp_path / "abl.db"
    path = tmp_path / "abl.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "base": "fixed", **changes, "storage": f"sqlite:///{db}"}))
    assert main(["ablate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {path}: " in err and expect in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abl.yaml"]
