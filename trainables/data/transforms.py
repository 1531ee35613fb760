"""The paper's image transforms, producing uint8 tensors; normalisation happens on the device.

VTAB-1k: resize to the model's size (bicubic), no augmentation. FGVC: resize to size·256/224, then a
random crop and horizontal flip for training and a centre crop for evaluation. Images leave the
loader as uint8 (4× less host→device traffic and memory for cached splits); :class:`Normalize`
turns them into normalised floats on the device, in the model's channels-last layout when asked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "build_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vtab_transform(image_size: int) -> T.Compose:
    """Resize to ``image_size``² as the paper's VTAB code does (bicubic, no crop, no flip)."""
    return T.Compose([
        T.Resize((image_size, image_size), interpolation=InterpolationMode.BICUBIC),
        T.PILToTensor(),
    ])


def fgvc_transform(image_size: int, train: bool) -> T.Compose:
    """Resize to 256/224 of the size, then random crop + flip (train) or centre crop (eval)."""
    resize = round(image_size * 256 / 224)
    steps: list[nn.Module] = [T.Resize((resize, resize), interpolation=InterpolationMode.BICUBIC)]
    if train:
        steps += [T.RandomCrop(image_size), T.RandomHorizontalFlip()]
    else:
        steps += [T.CenterCrop(image_size)]
    return T.Compose([*steps, T.PILToTensor()])


def build_transform(kind: str, image_size: int, train: bool) -> T.Compose:
    """The transform for a data kind (``vtab1k`` or ``fgvc``) and split role."""
    if kind == "fgvc":
        return fgvc_transform(image_size, train)
    return vtab_transform(image_size)


class Normalize(nn.Module):
    """uint8 NCHW batch -> float, scaled to [0, 1] and normalised with per-channel mean/std."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)
        self.channels_last = channels_last

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = (images.float() - self.mean) / self.std
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out
