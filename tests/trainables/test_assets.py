from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genft_search.errors import UserError
from trainables import assets
from trainables.data import vtab1k
from trainables.data.builtin import dsprites


def test_labels_bin_latents_as_vtab_does() -> None:
    # x position: 32 values -> 16 classes; orientation: 40 values -> 16 classes (factor 2.5)
    assert dsprites.label("dsprites_loc", np.array([0, 0, 0, 31, 5])) == 15
    assert dsprites.label("dsprites_loc", np.array([0, 0, 0, 2, 5])) == 1
    assert dsprites.label("dsprites_ori", np.array([0, 0, 39, 0, 0])) == 15
    assert dsprites.label("dsprites_ori", np.array([0, 0, 5, 0, 0])) == 2
    assert {dsprites.label("dsprites_ori", np.array([0, 0, o, 0, 0])) for o in range(40)} == set(range(16))


def test_rendered_position_and_orientation_follow_the_latents() -> None:
    left = dsprites.render(0, 5, 0, 0, 16)
    right = dsprites.render(0, 5, 0, 31, 16)
    cols = np.arange(dsprites.SIZE)
    assert (left.sum(0) * cols).sum() / left.sum() < (right.sum(0) * cols).sum() / right.sum()
    assert set(np.unique(left)) == {0, 255}
    flat = dsprites.render(1, 5, 0, 16, 16)    # ellipse, long axis horizontal
    turned = dsprites.render(1, 5, 10, 16, 16)  # a quarter turn: vertical
    assert np.ptp(np.nonzero(flat)[1]) > np.ptp(np.nonzero(flat)[0])
    assert np.ptp(np.nonzero(turned)[0]) > np.ptp(np.nonzero(turned)[1])


@pytest.mark.parametrize("shape", dsprites.SHAPES)
def test_each_shape_renders_alike_exactly_at_its_symmetry_angle(shape: str) -> None:
    # the README's ceiling rests on this: orientations one symmetry angle apart are the same image
    index = dsprites.SHAPES.index(shape)
    step = dsprites.NUM_ORIENTATIONS // dsprites.ROTATIONAL_SYMMETRY[shape]
    turns = dsprites.NUM_ORIENTATIONS
    same = [
        (dsprites.render(index, s, o, 16, 9) == dsprites.render(index, s, (o + step) % turns, 16, 9)).mean()
        for s in (0, 5) for o in range(turns)
    ]
    assert np.mean(same) > 0.999  # equal but for a few boundary pixels of float rounding
    if step < dsprites.NUM_ORIENTATIONS:
        half = dsprites.render(index, 5, 3, 16, 9) != dsprites.render(index, 5, 3 + step // 2, 16, 9)
        assert half.sum() > 20  # and not at half that angle


def test_the_ceiling_of_the_orientation_task_is_about_58_percent() -> None:
    # heart: every orientation readable; square: 1 of 4 labels; ellipse: 1 of 2 -> (1 + 1/4 + 1/2) / 3
    assert dsprites.best_possible_accuracy("dsprites_ori") == pytest.approx(7 / 12)
    assert dsprites.best_possible_accuracy("dsprites_loc") == 1.0


def test_written_task_is_a_vtab1k_folder_with_matching_labels(tmp_path: Path) -> None:
    folder = tmp_path / "dsprites_loc"
    dsprites.write_vtab_task(folder, "dsprites_loc", seed=0, n_test=30)
    vtab1k.check_task(tmp_path, "dsprites_loc")
    sizes = [len(vtab1k.read_split(tmp_path, "dsprites_loc", s)) for s in vtab1k.SPLITS]
    assert sizes == [800, 200, 1000, 30]
    # the label is the x position bin: brighter columns on the right mean larger labels
    centres, labels = [], []
    for path, label in vtab1k.read_split(tmp_path, "dsprites_loc", "train800")[:200]:
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (64, 64)
        centres.append((pixels.sum(0) * np.arange(64)).sum() / pixels.sum())
        labels.append(label)
    assert np.corrcoef(centres, labels)[0, 1] > 0.95


def test_prepare_writes_into_genft_home_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENFT_HOME", str(tmp_path / "home"))
    prepared = assets.prepare(["dsprites"])
    root = prepared["dsprites"]
    assert root == tmp_path / "home" / "vtab-1k"
    for task in assets.DSPRITES_TASKS:
        vtab1k.check_task(root, task)
    stamp = (root / "dsprites_ori" / "test.txt").stat().st_mtime_ns
    assets.prepare(["dsprites"])
    assert (root / "dsprites_ori" / "test.txt").stat().st_mtime_ns == stamp  # not rebuilt
    with pytest.raises(UserError, match="unknown asset"):
        assets.prepare(["imagenet"])


def test_home_defaults_outside_the_checkout(monkeypatch) -> None:
    monkeypatch.delenv("GENFT_HOME", raising=False)
    assert assets.genft_home() == Path.home() / ".cache" / "genft-search"


def test_mnist_reader_gives_the_idx_arrays() -> None:
    from trainables.data.builtin.mnist import load_mnist

    images, labels = load_mnist("test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert images.dtype == np.uint8 and set(np.unique(labels)) == set(range(10))
