from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from genft_search.errors import UserError
from trainables.data.builtin.vit import create_builtin_vit
from trainables.models import build_model, check_model, load_checkpoint


def _to_google_npz(model: nn.Module, path: Path) -> None:
    """Write a timm ViT in the layout of the original ``ViT-B_16.npz`` (Flax kernels, q/k/v apart)."""
    w: dict[str, np.ndarray] = {}
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    dim = sd["cls_token"].shape[-1]
    heads = model.blocks[0].attn.num_heads
    w["embedding/kernel"] = sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0)
    w["embedding/bias"] = sd["patch_embed.proj.bias"]
    w["cls"] = sd["cls_token"]
    w["Transformer/posembed_input/pos_embedding"] = sd["pos_embed"]
    w["Transformer/encoder_norm/scale"] = sd["norm.weight"]
    w["Transformer/encoder_norm/bias"] = sd["norm.bias"]
    w["head/kernel"] = sd["head.weight"].T
    w["head/bias"] = sd["head.bias"]
    w["pre_logits/kernel"] = np.zeros((dim, dim), np.float32)  # present in the 21k file, ignored
    for i in range(len(model.blocks)):
        b, p = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        mha = p + "MultiHeadDotProductAttention_1/"
        qkv_w, qkv_b = sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]
        for j, name in enumerate(("query", "key", "value")):
            w[mha + f"{name}/kernel"] = qkv_w[j * dim:(j + 1) * dim].T.reshape(dim, heads, dim // heads)
            w[mha + f"{name}/bias"] = qkv_b[j * dim:(j + 1) * dim].reshape(heads, dim // heads)
        out = sd[b + "attn.proj.weight"].reshape(dim, heads, dim // heads)
        w[mha + "out/kernel"] = out.transpose(1, 2, 0)
        w[mha + "out/bias"] = sd[b + "attn.proj.bias"]
        for ln, key in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            w[p + f"{ln}/scale"] = sd[b + f"{key}.weight"]
            w[p + f"{ln}/bias"] = sd[b + f"{key}.bias"]
        for r in range(2):
            w[p + f"MlpBlock_3/Dense_{r}/kernel"] = sd[b + f"mlp.fc{r + 1}.weight"].T
            w[p + f"MlpBlock_3/Dense_{r}/bias"] = sd[b + f"mlp.fc{r + 1}.bias"]
    np.savez(path, **w)


def _assert_backbone_equal(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    for key, value in sa.items():
        if not key.startswith("head."):
            assert torch.allclose(value, sb[key], atol=1e-6), key


@pytest.fixture
def source() -> nn.Module:
    torch.manual_seed(1)
    return create_builtin_vit(num_classes=10)


@pytest.fixture
def target() -> nn.Module:
    torch.manual_seed(2)
    return create_builtin_vit(num_classes=4)


def test_npz_in_the_original_vit_layout_round_trips(source, target, tmp_path: Path) -> None:
    path = tmp_path / "ViT-tiny.npz"
    _to_google_npz(source, path)
    head_before = target.head.weight.clone()
    load_checkpoint(target, path)
    _assert_backbone_equal(source, target)
    assert torch.equal(target.head.weight, head_before)  # the task's new head is kept
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(source.forward_features(x), target.forward_features(x), atol=1e-5)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_state_dict_files_round_trip(source, target, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".pth":
        torch.save({"model": state, "epoch": 3}, path)  # nested, as training scripts save it
    else:
        save_file(state, str(path))
    load_checkpoint(target, path)
    _assert_backbone_equal(source, target)
    assert target.head.out_features == 4


def test_missing_file_is_a_user_error(target, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        load_checkpoint(target, tmp_path / "ViT-B_16.npz")
    with pytest.raises(UserError, match="file not found"):
        build_model({"name": "vit_tiny_patch16_224", "checkpoint": str(tmp_path / "nope.pth")}, 3)


def test_check_model_finds_a_missing_checkpoint_before_any_trial(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        check_model({"name": "vit_base_patch16_224", "checkpoint": str(tmp_path / "ViT-B_16.npz")})
    (tmp_path / "w.pth").write_bytes(b"")
    for checkpoint in ("none", "hub", "hub:augreg_in21k", str(tmp_path / "w.pth")):
        check_model({"name": "vit_base_patch16_224", "checkpoint": checkpoint})  # nothing built


def test_checkpoint_of_another_architecture_is_a_user_error(target, tmp_path: Path) -> None:
    path = tmp_path / "deeper.safetensors"
    save_file(create_builtin_vit(num_classes=4, depth=5).state_dict(), str(path))
    bigger = create_builtin_vit(num_classes=4, depth=6)
    with pytest.raises(UserError, match="does not fit"):
        load_checkpoint(bigger, path)


def test_build_model_checks_names_and_asks_for_an_explicit_checkpoint() -> None:
    with pytest.raises(UserError, match="unknown timm model"):
        build_model({"name": "vit_imaginary", "checkpoint": "none"}, 3)
    with pytest.raises(UserError, match="checkpoint: missing"):
        build_model({"name": "vit_tiny_patch16_224"}, 3)
    model, info = build_model({"name": "vit_tiny_patch16_224", "checkpoint": "none", "image_size": 64}, 3)
    assert info.image_size == 64 and model.head.out_features == 3
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_hub_without_network_is_a_user_error(monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="hub"):
        build_model({"name": "vit_tiny_patch16_224", "checkpoint": "hub"}, 3)
