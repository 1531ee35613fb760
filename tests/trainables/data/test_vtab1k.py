from __future__ import annotations

from pathlib import Path

import pytest

from genft_search.errors import UserError
from trainables.data import vtab1k


def test_all_19_tasks_with_their_class_counts() -> None:
    assert len(vtab1k.TASKS) == 19
    assert vtab1k.TASKS["smallnorb_ele"][0] == 9
    assert vtab1k.TASKS["sun397"][0] == 397
    assert len(vtab1k.tasks_in_group("structured")) == 8
    assert len(vtab1k.tasks_in_group("natural")) == 7
    assert len(vtab1k.tasks_in_group("specialized")) == 4


def test_reads_list_files_relative_to_the_task_folder(vtab_root: Path) -> None:
    dataset = vtab1k.VTabDataset(vtab_root, "eurosat", "train800")
    assert len(dataset) == 20
    assert dataset.num_classes == 10
    image, label = dataset[3]
    assert image.mode == "RGB" and image.size == (16, 16)
    assert 0 <= label < 10
    assert dataset.items[3][0].parent == vtab_root / "eurosat" / "images"
    merged = vtab1k.read_split(vtab_root, "eurosat", "train800val200")
    assert len(merged) == 28


def test_check_task_accepts_a_complete_folder(vtab_root: Path) -> None:
    vtab1k.check_task(vtab_root, "eurosat")


def test_missing_task_folder_is_a_user_error(vtab_root: Path) -> None:
    with pytest.raises(UserError, match="cifar"):
        vtab1k.check_task(vtab_root, "cifar")


def test_missing_list_file_is_a_user_error(vtab_root: Path) -> None:
    (vtab_root / "eurosat" / "test.txt").unlink()
    with pytest.raises(UserError, match=r"test\.txt"):
        vtab1k.check_task(vtab_root, "eurosat")


def test_label_out_of_range_is_a_user_error(tmp_path: Path, make_vtab_task) -> None:
    folder = make_vtab_task(tmp_path, "kitti", 4, {"train800": 2, "val200": 2, "test": 2})
    (folder / "val200.txt").write_text("images/val200_0.png 7\n")
    with pytest.raises(UserError, match="label 7 out of range"):
        vtab1k.check_task(tmp_path, "kitti")


def test_malformed_line_names_file_and_line(vtab_root: Path) -> None:
    (vtab_root / "eurosat" / "val200.txt").write_text("images/val200_0.png 1\nno-label-here\n")
    with pytest.raises(UserError, match=r"val200\.txt: line 2"):
        vtab1k.read_split(vtab_root, "eurosat", "val200")


def test_missing_image_is_a_user_error(vtab_root: Path) -> None:
    (vtab_root / "eurosat" / "images" / "test_0.png").unlink()
    with pytest.raises(UserError, match=r"test_0\.png is missing"):
        vtab1k.check_task(vtab_root, "eurosat")


def test_unknown_task_takes_its_class_count_from_labels(tmp_path: Path, make_vtab_task) -> None:
    make_vtab_task(tmp_path, "my_task", 3, {"train800": 30, "val200": 5, "test": 5}, seed=1)
    assert vtab1k.num_classes(tmp_path, "my_task") == 3
