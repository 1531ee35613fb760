from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from trainables.data.transforms import Normalize, build_transform


def test_vtab_resizes_without_augmentation() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    transform = build_transform("vtab1k", 24, train=True)
    out = transform(image)
    assert out.dtype == torch.uint8 and out.shape == (3, 24, 24)
    assert torch.equal(out, transform(image))  # deterministic


def test_fgvc_train_crops_randomly_and_eval_centre_crops() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    train = build_transform("fgvc", 32, train=True)
    evaluate = build_transform("fgvc", 32, train=False)
    torch.manual_seed(0)
    crops = {train(image).numpy().tobytes() for _ in range(6)}
    assert len(crops) > 1
    assert evaluate(image).shape == (3, 32, 32)
    assert torch.equal(evaluate(image), evaluate(image))


def test_normalize_matches_the_float_formula() -> None:
    batch = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    shape = (1, 3, 1, 1)
    expected = (batch.float() / 255 - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)
    out = Normalize(mean, std, channels_last=True)(batch)
    assert torch.allclose(out, expected, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)
