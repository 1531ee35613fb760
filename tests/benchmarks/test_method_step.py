"""The step-time benchmark runs end to end, and its slow GenFT references compute what the library does."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from genft_search.method import attach_genft, generate_delta

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _reference_genft import ReferenceSettings, attach_reference  # noqa: E402

RESULT = re.compile(
    r"^RESULT genft_over_lora=(\S+) genft_over_unfused=(\S+) naive_over_genft=(\S+) merged_over_frozen=(\S+)$"
)


def _tiny_vit(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=32,
                             patch_size=8, depth=2, embed_dim=48, num_heads=3)


def test_smallest_configuration_prints_table_and_result_line() -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "method_step.py"), "--model", "vit_tiny_patch16_224:8",
           "--img-size", "32", "--steps", "1", "--warmup", "0", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    match = RESULT.match(lines[-1])
    assert match, lines[-1]
    ratios = [float(v) for v in match.groups()]
    assert all(math.isfinite(v) and v > 0 for v in ratios)
    table = [ln.split() for ln in lines if ln.startswith("vit_tiny_patch16_224")]
    variants = {row[2]: row for row in table}
    assert set(variants) == {"frozen", "lora", "genft", "unfused", "naive", "frozen_infer", "merged_infer"}
    # The references have exactly the library's GenFT parameters (a = 82, b = 2 on d = 192, 12 blocks).
    expected = 4 * 82 * 192 + 2 * 12 * 2 * 192
    assert {int(variants[v][3]) for v in ("genft", "unfused", "naive", "merged_infer")} == {expected}


def _library_and_reference(mode: str, settings: ReferenceSettings):
    lib_model = _tiny_vit()
    ref_model = _tiny_vit()
    ref_model.load_state_dict(lib_model.state_dict())
    cfg = {f: getattr(settings, f) for f in ("shared_dim", "specific_dim", "sigma1", "sigma2", "w0_ratio",
                                              "scaling", "dropout", "ratio_on", "delta_layout")}
    adapter = attach_genft(lib_model, {**cfg, "init_a": "normal", "init_b": "normal"})
    ref = attach_reference(ref_model, mode, settings)
    own = dict(adapter.named_parameters())
    ref.load_factors(own["p1"], own["q1"], own["p2"], own["q2"], own["a"], own["b"])
    return lib_model, adapter, ref_model, ref


SETTINGS = [
    ReferenceSettings(shared_dim=6, specific_dim=2),  # the timm ViT defaults (ratio on generator, transposed)
    ReferenceSettings(shared_dim=5, specific_dim=3, sigma2="tanh", w0_ratio=0.7, scaling=1.3,
                      ratio_on="w0", delta_layout="linear"),
    ReferenceSettings(shared_dim=4, specific_dim=1, sigma2="leaky_relu", w0_ratio=1.4, scaling=0.5),
]


@pytest.mark.parametrize("mode", ["unfused", "naive"])
@pytest.mark.parametrize("settings", SETTINGS, ids=["vit-defaults", "w0-linear-tanh", "leaky"])
def test_reference_matches_library_delta_outputs_and_gradients(
    mode: str, settings: ReferenceSettings
) -> None:
    lib_model, adapter, ref_model, ref = _library_and_reference(mode, settings)
    lib_model.eval()
    ref_model.eval()
    lib_delta, ref_delta = adapter.delta_weights(), ref.delta_weights(ref_model)
    assert set(lib_delta) == set(ref_delta) == {f"blocks.{i}.attn.qkv.weight" for i in range(2)}
    for name, delta in lib_delta.items():
        assert delta.abs().max() > 0
        torch.testing.assert_close(ref_delta[name], delta, rtol=1e-4, atol=1e-6)

    x = torch.randn(3, 3, 32, 32)
    y = torch.tensor([0, 3, 1])
    lib_out, ref_out = lib_model(x), ref_model(x)
    torch.testing.assert_close(ref_out, lib_out, rtol=1e-4, atol=1e-5)
    torch.nn.functional.cross_entropy(lib_out, y).backward()
    torch.nn.functional.cross_entropy(ref_out, y).backward()
    own = dict(adapter.named_parameters())
    pairs = [(own[k].grad, getattr(ref, k).grad) for k in ("p1", "q1", "p2", "q2")]
    pairs += [(own["a"].grad[i], ref.a[i].grad) for i in range(2)]
    pairs += [(own["b"].grad[i], ref.b[i].grad) for i in range(2)]
    pairs += [(lib_model.head.weight.grad, ref_model.head.weight.grad)]
    for lib_grad, ref_grad in pairs:
        assert lib_grad is not None and ref_grad is not None
        torch.testing.assert_close(ref_grad, lib_grad, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("mode", ["unfused", "naive"])
def test_reference_delta_equals_spec_generator(mode: str) -> None:
    settings = ReferenceSettings(shared_dim=5, specific_dim=2, sigma2="gelu", w0_ratio=0.8, scaling=1.5)
    model = _tiny_vit()
    ref = attach_reference(model, mode, settings)
    ref.eval()
    w = model.blocks[1].attn.qkv.base.weight
    got = ref.delta_weights(model)["blocks.1.attn.qkv.weight"]
    d = ref.d
    for rows in (slice(0, d), slice(2 * d, 3 * d)):
        expected = generate_delta(w[rows], ref.p1, ref.q1, ref.p2, ref.q2, ref.a[1], ref.b[1], sigma2="gelu",
                                  w0_ratio=0.8, scaling=1.5, ratio_on="generator", delta_layout="transposed")
        torch.testing.assert_close(got[rows], expected, rtol=1e-4, atol=1e-7)
    assert torch.count_nonzero(got[d : 2 * d]) == 0  # k rows are not adapted


def test_reference_freezes_backbone_and_naive_refuses_inner_activation() -> None:
    model = _tiny_vit()
    ref = attach_reference(model, "unfused", ReferenceSettings(shared_dim=4, specific_dim=1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    own = {f"genft_reference.{n}" for n, _ in ref.named_parameters()}
    assert trainable == own | {"head.weight", "head.bias"}
    with pytest.raises(ValueError, match="sigma1"):
        attach_reference(_tiny_vit(), "naive", ReferenceSettings(shared_dim=4, specific_dim=1, sigma1="relu"))
