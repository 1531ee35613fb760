"""Building a timm model for a task and loading its pretrained weights.

``model`` section of a study (all keys but ``name`` optional):

- ``name``: any timm model name (``vit_base_patch16_224`` for the paper), or ``builtin`` for the
  project's MNIST-pretrained ViT (:mod:`trainables.data.builtin.vit`).
- ``checkpoint``: a local ``.npz`` (the original Google ``ViT-B_16.npz``, loaded by timm's npz
  reader), ``.pth``/``.pt``/``.bin``/``.safetensors`` (a state dict, optionally under ``model`` or
  ``state_dict``); ``hub`` (timm's default pretrained tag, needs internet) or ``hub:<tag>``;
  ``builtin`` (the built-in ViT, prepared on first use); ``none`` (random weights, stated on purpose).
- ``image_size``: input size (defaults to the model's); ``mean``/``std``: normalisation (ImageNet
  statistics by default, as in the paper's code; the built-in ViT's own otherwise).
- any other key is passed to ``timm.create_model`` (``drop_path_rate``, ``img_size``, ...).

The task head is always new (``num_classes`` of the task); a checkpoint's head is dropped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from genft_search.errors import UserError
from trainables.data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["build_model", "check_model"]

STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
_RESERVED = {"name", "checkpoint", "image_size", "mean", "std"}


@dataclass(frozen=True)
class ModelInfo:
    """What the data pipeline needs to know about a built model."""

    name: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    checkpoint: str


def build_model(model_cfg: Mapping[str, Any], num_classes: int) -> tuple[nn.Module, ModelInfo]:
    """Create the timm model with a ``num_classes`` head and load the checkpoint the study names."""
    cfg = dict(model_cfg)
    name = str(cfg.get("name") or "")
    checkpoint = cfg.get("checkpoint")
    if name == "builtin" or (not name and checkpoint == "builtin"):
        return _build_builtin(cfg, num_classes)
    if not name:
        raise UserError("model: name: missing; expected a timm model name "
                        "(e.g. vit_base_patch16_224) or builtin")
    if checkpoint is None or str(checkpoint).strip() == "":
        raise UserError("model: checkpoint: missing or empty; expected a .npz/.pth/.safetensors file, "
                        "'hub', 'builtin' or 'none' (random weights)")
    checkpoint = str(checkpoint)
    kwargs = {key: value for key, value in cfg.items() if key not in _RESERVED}
    if "image_size" in cfg:
        kwargs.setdefault("img_size", int(cfg["image_size"]))
    if checkpoint == "builtin":
        raise UserError("model: checkpoint: builtin is only for name: builtin; "
                        "expected a file, 'hub' or 'none'")
    if checkpoint == "hub" or checkpoint.startswith("hub:"):
        model = _from_hub(name, checkpoint, num_classes, kwargs)
    else:
        model = _create(name, num_classes, kwargs)
        if checkpoint != "none":
            load_checkpoint(model, checkpoint)
    mean = tuple(cfg.get("mean") or IMAGENET_MEAN)
    std = tuple(cfg.get("std") or IMAGENET_STD)
    return model, ModelInfo(name, _image_size(model, cfg), mean, std, checkpoint)


def _create(name: str, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    if name not in timm.list_models() and name.split(".")[0] not in timm.list_models():
        raise UserError(f"model: name: unknown timm model {name!r}; expected a name from timm.list_models()")
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except TypeError as error:
        raise UserError(f"model: {name}: invalid model option ({error})") from None


def _from_hub(name: str, checkpoint: str, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    full = name if checkpoint == "hub" else f"{name.split('.')[0]}.{checkpoint.split(':', 1)[1]}"
    try:
        return timm.create_model(full, pretrained=True, num_classes=num_classes, **kwargs)
    except Exception as error:  # network, missing tag, offline mode: all the user's to fix
        reason = " ".join(str(error).split())[:200]
        raise UserError(f"model: checkpoint: could not fetch {full!r} from the hub ({type(error).__name__}: "
                        f"{reason}); expected network access or a local .npz/.pth/.safetensors file"
                        ) from None


def _image_size(model: nn.Module, cfg: Mapping[str, Any]) -> int:
    if "image_size" in cfg:
        return int(cfg["image_size"])
    patch_embed = getattr(model, "patch_embed", None)
    size = getattr(patch_embed, "img_size", None)
    if size:
        return int(size[0] if isinstance(size, (tuple, list)) else size)
    return int(getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224))[-1])


def _head_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the classifier (dropped from checkpoints: the task head is new)."""
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier", "head")
    names = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    return {key for key in model.state_dict() if any(key.startswith(f"{n}.") for n in names)}


def _checkpoint_file(path: str | Path) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{file}: model: checkpoint: file not found; "
                        "expected a .npz, .pth or .safetensors file, "
                        "'hub', 'builtin' or 'none'")
    return file


def check_model(model_cfg: Mapping[str, Any]) -> None:
    """Before any trial starts: prepare the built-in ViT, or check that a checkpoint file exists.

    Run in the driver, so the built-in model is pretrained once with its progress bar in view (not
    silently inside the first trials) and a missing checkpoint is one error before anything runs.
    """
    name = str(model_cfg.get("name") or "")
    checkpoint = str(model_cfg.get("checkpoint") or "")
    if (name == "builtin" and checkpoint in ("", "builtin")) or (not name and checkpoint == "builtin"):
        from trainables.assets import ensure_builtin_vit

        ensure_builtin_vit()
        return
    if checkpoint and checkpoint not in ("none", "builtin", "hub") and not checkpoint.startswith("hub:"):
        _checkpoint_file(checkpoint)


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load pretrained weights from a local file into ``model``, keeping its (new) head."""
    file = _checkpoint_file(path)
    if file.suffix == ".npz":
        load_pretrained = getattr(model, "load_pretrained", None)
        if not callable(load_pretrained):
            raise UserError(f"{file}: model: checkpoint: {type(model).__name__} cannot read .npz; "
                            "expected a timm ViT or a .pth/.safetensors file")
        head = {key: value.clone() for key, value in model.state_dict().items() if key in _head_keys(model)}
        try:
            load_pretrained(str(file))
        except (KeyError, ValueError, RuntimeError) as error:
            raise UserError(f"{file}: model: checkpoint: does not fit {type(model).__name__} ({error}); "
                            "expected the npz of the same architecture") from None
        model.load_state_dict(head, strict=False)
        return
    if file.suffix not in STATE_DICT_SUFFIXES:
        raise UserError(f"{file}: model: checkpoint: unknown file type; "
                        "expected .npz, .pth, .pt, .bin or .safetensors")
    try:
        state = timm.models.load_state_dict(str(file), use_ema=False, weights_only=True)
    except Exception as error:
        raise UserError(f"{file}: model: checkpoint: unreadable ({type(error).__name__}); "
                        "expected a torch or safetensors state dict") from None
    state = _adapt(state, model)
    head_keys = _head_keys(model)
    state = {key: value for key, value in state.items() if key not in head_keys}
    missing, _unexpected = model.load_state_dict(state, strict=False)
    missing = [key for key in missing if key not in head_keys]
    if missing:
        raise UserError(f"{file}: model: checkpoint: does not fit {type(model).__name__}: "
                        f"{len(missing)} weights "
                        f"missing (first: {missing[0]}); expected a checkpoint of the same architecture")


def _adapt(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """timm's own filter for the model family (position-embedding resizing, old key names)."""
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is None:
        return state
    try:
        return filter_fn(state, model)
    except Exception:  # a family filter that does not apply to this file: load the keys as they are
        return state


def _build_builtin(cfg: dict[str, Any], num_classes: int) -> tuple[nn.Module, ModelInfo]:
    from trainables.assets import ensure_builtin_vit
    from trainables.data.builtin import vit

    checkpoint = str(cfg.get("checkpoint") or "builtin")
    overrides = {key: value for key, value in cfg.items() if key not in _RESERVED}
    if "image_size" in cfg:  # timm's checkpoint filter resamples the position embedding
        overrides.setdefault("img_size", int(cfg["image_size"]))
    model = vit.create_builtin_vit(num_classes, **overrides)
    mean, std = vit.MEAN, vit.STD
    if checkpoint == "builtin":
        folder = ensure_builtin_vit()
        config = json.loads((folder / vit.CONFIG_FILE).read_text())
        mean, std = tuple(config["mean"]), tuple(config["std"])
        load_checkpoint(model, folder / vit.WEIGHTS_FILE)
    elif checkpoint != "none":
        load_checkpoint(model, checkpoint)
    mean = tuple(cfg.get("mean") or mean)
    std = tuple(cfg.get("std") or std)
    return model, ModelInfo("builtin", _image_size(model, cfg), mean, std, checkpoint)
