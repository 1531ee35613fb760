from __future__ import annotations

import json
from pathlib import Path

import pytest

from genft_search.errors import UserError
from trainables.data import fgvc


def test_five_datasets_with_their_class_counts() -> None:
    assert {name: info.num_classes for name, info in fgvc.DATASETS.items()} == {
        "cub200": 200, "nabirds": 555, "oxford_flowers": 102, "stanford_dogs": 120, "stanford_cars": 196}


def test_one_label_map_for_all_splits(fgvc_root: Path) -> None:
    mapping = fgvc.label_map(fgvc_root, "cub200")
    assert mapping == {1: 0, 3: 1, 7: 2}  # id 7 only in test still gets its own label
    train = fgvc.FGVCDataset(fgvc_root, "cub200", "train")
    test = fgvc.FGVCDataset(fgvc_root, "cub200", "test")
    assert sorted(train.labels) == [0, 0, 1]
    assert sorted(test.labels) == [0, 2]
    assert train.num_classes == 200


def test_images_resolve_under_the_dataset_image_root(fgvc_root: Path) -> None:
    dataset = fgvc.FGVCDataset(fgvc_root, "cub200", "val")
    image, label = dataset[0]
    assert dataset.items[0][0] == fgvc_root / "CUB_200_2011" / "images" / "003.c" / "y2.jpg"
    assert image.mode == "RGB" and image.size == (30, 20) and label == 1
    fgvc.check_task(fgvc_root, "cub200")


def test_unknown_dataset_and_missing_folder_are_user_errors(fgvc_root: Path) -> None:
    with pytest.raises(UserError, match="unknown FGVC dataset"):
        fgvc.check_task(fgvc_root, "imagenet")
    with pytest.raises(UserError, match="StanfordDogs"):
        fgvc.check_task(fgvc_root, "stanford_dogs")


def test_bad_json_is_a_user_error(fgvc_root: Path) -> None:
    (fgvc_root / "CUB_200_2011" / "val.json").write_text("{not json")
    with pytest.raises(UserError, match="invalid json"):
        fgvc.label_map(fgvc_root, "cub200")
    (fgvc_root / "CUB_200_2011" / "val.json").write_text(json.dumps({"a.jpg": "bird"}))
    with pytest.raises(UserError, match="not an integer"):
        fgvc.label_map(fgvc_root, "cub200")
