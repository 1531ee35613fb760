"""The ablation table is recomputed from the stored trials: checked against an independent recount."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

import optuna
import pytest

from genft_search.ablation import PAPER_ABLATION, ablation_table
from genft_search.ablation._table import RISING_GAIN, late_gain
from genft_search.method import GenFTConfig, genft_num_parameters
from tests.support.ablation_studies import LAYERS, D, make_ablation_studies

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[optuna.Study]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('abl') / 'studies.db'}"
    make_ablation_studies(url, "abl", ["dsprites_loc", "kitti"], root="/data/vtab-1k")
    # reload from the database: the table must come from what is stored, not from live objects
    names = ["abl/dsprites_loc", "abl/kitti"]
    return url, [optuna.load_study(study_name=n, storage=url) for n in names]


def _values(study: optuna.Study, variant: str) -> dict[int, float]:
    return {
        t.params["seed"]: t.value
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.params["ablation"] == variant
    }


def test_per_task_rows_equal_an_independent_recount(stored) -> None:
    _, studies = stored
    table = ablation_table(studies)
    assert table.name == "abl" and table.metric == "val_top1" and table.seeds == [1, 2, 3]
    for study in studies:
        task = study.user_attrs["task"]
        full = statistics.mean(_values(study, "full").values())
        for variant in table.variants:
            values = list(_values(study, variant).values())
            row = table.summary[(table.summary.task == task) & (table.summary.variant == variant)].iloc[0]
            assert row.n == len(values) == 3
            assert row["mean"] == pytest.approx(statistics.mean(values))
            assert row["std"] == pytest.approx(statistics.stdev(values))
            assert row.delta == pytest.approx(statistics.mean(values) - full)


def test_average_row_is_mean_of_task_means_and_std_over_per_seed_averages(stored) -> None:
    _, studies = stored
    table = ablation_table(studies)
    for variant in table.variants:
        per_seed = [statistics.mean(_values(s, variant)[seed] for s in studies) for seed in (1, 2, 3)]
        task_means = [statistics.mean(_values(s, variant).values()) for s in studies]
        row = table.summary[(table.summary.task == "average") & (table.summary.variant == variant)].iloc[0]
        assert row["mean"] == pytest.approx(statistics.mean(task_means))
        assert row["std"] == pytest.approx(statistics.stdev(per_seed))
        assert row.n == 2


def test_dims_follow_the_dim_zero_becomes_eight_rule_and_params_are_the_stored_counts(stored) -> None:
    _, studies = stored
    table = ablation_table(studies)
    rows = table.summary[table.summary.task == "kitti"].set_index("variant")
    # base: shared 6, specific 0; without_shared sets a = 0 and, since b was 0, b = 8
    assert (rows.loc["full", "shared_dim"], rows.loc["full", "specific_dim"]) == (6, 0)
    assert (rows.loc["without_shared", "shared_dim"], rows.loc["without_shared", "specific_dim"]) == (0, 8)
    for variant in table.variants:
        cfg = GenFTConfig(shared_dim=6, specific_dim=0, ablation=variant)
        assert rows.loc[variant, "params"] == genft_num_parameters(cfg, family="vit", d=D, num_layers=LAYERS)
    assert rows.loc["without_row", "params"] < rows.loc["full", "params"]


def test_the_init_of_the_specific_factors_is_shown_and_marked_when_the_library_changed_it(stored) -> None:
    _, studies = stored
    table = ablation_table(studies)
    rows = table.summary[table.summary.task == "kitti"].set_index("variant")
    resolved = GenFTConfig(shared_dim=6, specific_dim=0, ablation="without_shared").resolve("vit")
    assert resolved.init_reason == "fallback_dim"  # b = 0 -> 8 gets factors that can learn
    assert rows.loc["without_shared", "init"] == f"{resolved.init_a}/{resolved.init_b}*"
    assert table.summary.loc[table.summary.variant == "full", "init"].isna().all()  # b = 0: no factors
    markdown = table.markdown()
    assert "init A/B" in markdown and f"| {resolved.init_a}/{resolved.init_b}* |" in markdown
    assert "* = the setting's init would keep ΔW" in markdown


def test_paper_numbers_beside_matching_tasks_only_on_the_papers_data(stored, tmp_path: Path) -> None:
    _, studies = stored
    table = ablation_table(studies)
    row = table.summary[(table.summary.task == "kitti") & (table.summary.variant == "without_shared")].iloc[0]
    vtab = PAPER_ABLATION["vtab1k"]
    assert row.paper == vtab["without_shared"]["kitti"]
    assert row.paper_delta == pytest.approx(vtab["without_shared"]["kitti"] - vtab["full"]["kitti"])
    avg = table.summary[(table.summary.task == "average") & (table.summary.variant == "full")].iloc[0]
    assert avg.paper == pytest.approx((vtab["full"]["kitti"] + vtab["full"]["dsprites_loc"]) / 2)
    # the built-in procedural dSprites is not the paper's data: no paper column
    url = f"sqlite:///{tmp_path / 'builtin.db'}"
    builtin = make_ablation_studies(
        url, "own", ["dsprites_loc"], root="builtin", variants=("full", "without_row"), seeds=(1, 2)
    )
    own = ablation_table(builtin)
    assert own.summary["paper"].isna().all()
    assert "paper" not in own.markdown()


def test_formats_carry_the_same_numbers(stored, tmp_path: Path) -> None:
    _, studies = stored
    table = ablation_table(studies)
    paths = table.write(tmp_path)
    assert sorted(p.suffix for p in paths.values()) == [".csv", ".md", ".tex"]
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert len(rows) == len(table.summary) == 2 * 5 + 5
    for r in rows:
        ref = table.summary[(table.summary.task == r["task"]) & (table.summary.variant == r["variant"])].iloc[
            0
        ]
        assert float(r["mean"]) == pytest.approx(ref["mean"], abs=1e-5)
    md = paths["md"].read_text()
    full = table.summary[(table.summary.task == "dsprites_loc") & (table.summary.variant == "full")].iloc[0]
    assert f"{full['mean']:.2f} ± {full['std']:.2f}" in md
    assert md == str(table)
    tex = paths["tex"].read_text()
    assert "\\toprule" in tex and "without\\_shared" in tex and f"{full['mean']:.2f}" in tex


def test_only_complete_trials_count_and_one_seed_has_no_std(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'partial.db'}"
    (study,) = make_ablation_studies(url, "part", ["cifar"], variants=("full", "without_row"), seeds=(1, 2))
    done = next(t for t in study.trials if t.params == {"ablation": "without_row", "seed": 2})
    for state in (optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED):
        study.add_trial(
            optuna.trial.create_trial(
                params={"ablation": "without_row", "seed": 1}, distributions=done.distributions, state=state
            )
        )
    table = ablation_table([optuna.load_study(study_name="part/cifar", storage=url)])
    row = table.summary[table.summary.variant == "without_row"].iloc[0]
    assert row.n == 2

    url2 = f"sqlite:///{tmp_path / 'one_seed.db'}"
    one = ablation_table(make_ablation_studies(url2, "one", ["cifar"], variants=("full",), seeds=(1,)))
    row = one.summary.iloc[0]
    assert row.n == 1 and row["std"] != row["std"]  # NaN: one seed has no spread
    assert f"| {row['mean']:.2f} |" in one.markdown()


def test_late_gain_is_the_rise_over_the_last_quarter_and_rising_rows_are_named(stored) -> None:
    _, studies = stored
    table = ablation_table(studies)
    md = table.markdown()
    for study in studies:
        task = study.user_attrs["task"]
        for variant in table.variants:
            curves = [
                t.intermediate_values for t in study.trials
                if t.state == optuna.trial.TrialState.COMPLETE and t.params["ablation"] == variant
            ]
            gain = statistics.mean(c[4] - c[3] for c in curves)  # 4 epochs: the last quarter is epoch 3 -> 4
            row = table.summary[(table.summary.task == task) & (table.summary.variant == variant)].iloc[0]
            assert row.late_gain == pytest.approx(gain)
            assert (f"{task}/{variant} (+" in md) == (gain >= RISING_GAIN)
    assert ("Still rising:" in md) == (not table.rising().empty)


def test_a_flat_curve_is_not_rising_and_a_short_one_has_no_late_gain() -> None:
    def trial(curve: dict[int, float]) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(value=curve[max(curve)], intermediate_values=curve)

    assert late_gain(trial({e: 50.0 + (e >= 7) * 0.25 for e in range(1, 9)})) == pytest.approx(0.25)
    assert late_gain(trial({e: 10.0 * e for e in range(1, 13)})) == pytest.approx(30.0)  # epoch 9 -> 12
    assert late_gain(trial({1: 1.0, 2: 2.0, 3: 3.0})) != late_gain(trial({1: 1.0, 2: 2.0, 3: 3.0}))  # NaN
