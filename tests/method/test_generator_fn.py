"""The generator's autograd function: buffer reuse, dropout sampling, accumulation, autocast."""

from __future__ import annotations

import math

import pytest
import torch

from genft_search.method import GenFTConfig, GenFTGenerator, attach_genft
from genft_search.method._generator_fn import Workspace, dropped_positions
from tests.method.method_helpers import make_vit


def test_workspace_hands_out_a_buffer_again_only_when_nothing_holds_it():
    ws = Workspace()
    like, shape = torch.empty(1), (3, 4, 4)
    first = ws.take("out", shape, like)
    second = ws.take("out", shape, like)  # `first` holds the slot's buffer: a new one
    assert second.data_ptr() != first.data_ptr()
    kept = second.data_ptr()
    del second
    third = ws.take("out", shape, like)  # nothing holds the buffer any more: handed out again
    assert third.data_ptr() == kept
    view = third.transpose(1, 2)
    del third
    assert ws.take("out", shape, like).data_ptr() != view.data_ptr()  # a view of it is alive
    assert ws.take("out", (3, 4, 5), like).shape == (3, 4, 5)  # another shape: a new buffer
    assert ws.take("out", (3, 4, 5), like.double()).dtype == torch.float64


def test_copies_of_a_trained_model_start_with_an_empty_workspace():
    import copy
    import pickle

    model, adapter = _vit_genft()
    model.train()
    model(torch.randn(1, 3, 32, 32)).sum().backward()
    assert len(adapter.generator._workspace) > 0
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert len(clone.genft._workspace) == 0
        clone(torch.randn(1, 3, 32, 32)).sum().backward()  # and it trains
        assert len(clone.genft._workspace) > 0


def test_workspace_copy_is_refreshed_when_the_source_changes():
    ws = Workspace()
    src = torch.arange(6.0).view(2, 3)
    buf = ws.copy_of("w", src)
    assert torch.equal(buf, src)
    buf[0] = -1.0  # a caller rewrites part of it; the rest is not copied again while src is unchanged
    del buf
    assert torch.equal(ws.copy_of("w", src)[1], src[1])
    src.add_(1.0)  # in place: a new version
    assert torch.equal(ws.copy_of("w", src), src)


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5, 0.9])
def test_dropped_positions_are_iid_bernoulli(p):
    n = 200_000
    torch.manual_seed(0)
    pos = dropped_positions(n, p, torch.device("cpu"))
    assert pos.dtype == torch.int64
    assert bool((pos[1:] > pos[:-1]).all()) and int(pos[0]) >= 0 and int(pos[-1]) < n
    sd = math.sqrt(n * p * (1 - p))
    assert abs(len(pos) - n * p) < 5 * sd
    halves = torch.bincount((pos >= n // 2).long(), minlength=2)  # no drift along the matrix
    assert abs(int(halves[0]) - int(halves[1])) < 5 * math.sqrt(2) * sd
    dropped = torch.zeros(n, dtype=torch.bool)
    dropped[pos] = True
    both = (dropped[:-1] & dropped[1:]).sum().item()  # neighbours independent: P(both) = p²
    assert abs(both - (n - 1) * p * p) < 6 * math.sqrt(n * p * p)
    torch.manual_seed(0)
    assert torch.equal(dropped_positions(n, p, torch.device("cpu")), pos)


def test_dropped_positions_cover_small_and_refuse_invalid_rates():
    torch.manual_seed(1)
    assert all(len(dropped_positions(1, 0.5, torch.device("cpu"))) <= 1 for _ in range(20))
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="dropout"):
            dropped_positions(10, bad, torch.device("cpu"))


def _vit_genft(dropout: float = 0.0, **kw):
    torch.manual_seed(0)
    model = make_vit(depth=2)
    adapter = attach_genft(model, GenFTConfig(shared_dim=4, specific_dim=2, dropout=dropout, **kw))
    return model, adapter


@pytest.mark.parametrize("sigma2", ["identity", "tanh"])
def test_two_forward_passes_before_one_backward_accumulate_exactly(sigma2):
    """Gradient accumulation: the second pass must not overwrite what the first one's backward needs
    (the stage matrices, the pre-activations kept for σ2, the W0 + ΔW buffers)."""
    model, adapter = _vit_genft(sigma2=sigma2)
    model.train()
    x = torch.randn(2, 3, 32, 32)
    (model(x).square().sum() + model(x * 2).square().sum()).backward()
    joint = {n: p.grad.clone() for n, p in adapter.named_parameters()}
    model.zero_grad(set_to_none=True)
    first = model(x).square().sum()
    second = model(x * 2).square().sum()
    first.backward()
    second.backward()
    for n, p in adapter.named_parameters():
        torch.testing.assert_close(p.grad, joint[n], rtol=1e-5, atol=1e-7, msg=n)


def test_training_steps_reuse_the_generator_buffers_and_eval_lets_them_go():
    model, adapter = _vit_genft(dropout=0.1)
    model.train()
    ws = adapter.generator._workspace
    x = torch.randn(2, 3, 32, 32)
    ptrs = []
    for _ in range(3):
        model(x).sum().backward()
        ptrs.append({k: v.data_ptr() for k, v in ws._slots.items()})
    # the two stages' matrices, their gradients, and W0 + ΔW of each block's qkv
    assert set(ptrs[0]) == {"stage0", "out", "grad_out", "grad_stage0", "weight:0", "weight:2"}
    assert ptrs[1] == ptrs[2]  # steady state: no new d × d buffers
    model.eval()
    assert len(ws) == 0


def test_autocast_runs_the_generator_in_the_autocast_dtype_with_fp32_gradients():
    cfg = GenFTConfig(shared_dim=4, specific_dim=2, dropout=0.0).resolve("vit")
    torch.manual_seed(0)
    gen = GenFTGenerator(cfg, 16, [0, 0, 1, 1])
    w0 = torch.randn(4, 16, 16)
    ref = gen(w0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = gen(w0)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, rtol=0.05, atol=0.05 * float(ref.detach().abs().max()))
    low.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in gen.parameters())
