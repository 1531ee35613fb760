"""The generator's stages as one autograd function, with reusable d × d buffers and cheap dropout.

Why not plain autograd: on a ViT-B every (T, d, d) float stack is 57 MB. Autograd allocates a new
one for each elementwise step of the backward (mask, scale, the gradient of the inter-stage matrix),
and on the CPU every allocation that large is mapped afresh by the C allocator and page-faulted in,
step after step. Here the forward and the backward run the same thin matmuls as autograd would
(four in the forward, seven in the backward, each O(T·d²·(a + b))), but every d × d stack goes into a
:class:`Workspace` buffer that is reused as soon as nothing else holds it, and masking and scaling
happen in place.

Dropout is inverted dropout on each stage's generated matrix, i.i.d. Bernoulli(p) per entry. Rather
than drawing d² uniforms per matrix, the dropped positions are drawn directly: the gaps between
consecutive dropped entries are geometric(p), so about p·n gaps drawn by inversion (see
:func:`dropped_positions`) give the positions, which :meth:`Tensor.index_fill_` zeroes in the forward
and in the backward.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["StageSpec", "Workspace", "dropped_positions", "run_stages"]


def _count_storage_refs(t: Tensor) -> int:
    return int(torch._C._storage_Use_Count(t.untyped_storage()._cdata))


def _storage_refs_of_lone_tensor() -> int | None:
    """How many references a tensor nobody else holds shows (None: this torch cannot tell)."""
    try:
        return _count_storage_refs(torch.empty(1))
    except (AttributeError, RuntimeError):
        return None


_LONE_REFS = _storage_refs_of_lone_tensor()


class Workspace:
    """Named reusable buffers. A buffer is handed out again only when nothing but the workspace holds
    its storage (no view, no autograd saved tensor, no caller), so reuse can never overwrite live
    data: two forward passes before one backward (gradient accumulation) simply get a new buffer."""

    def __init__(self) -> None:
        self._slots: dict[str, Tensor] = {}
        self._stamps: dict[str, tuple[int, int]] = {}  # what a slot's buffer was last filled from
        self._lock = threading.Lock()  # replicas in threads (nn.DataParallel) share one workspace

    def __getstate__(self) -> dict:
        return {}  # copies and pickles start empty: the buffers are scratch space

    def __setstate__(self, state: dict) -> None:
        Workspace.__init__(self)

    def take(self, slot: str, shape: Sequence[int], like: Tensor) -> Tensor:
        """The slot's buffer (a new alias of it) if nothing holds it and it fits, else a new one.

        Only aliases are handed out, never the kept tensor itself: whoever holds one (an autograd
        saved tensor included) then counts as a reference to the storage.
        """
        with self._lock:
            buf = self._slots.get(slot)
            if not (buf is not None and _LONE_REFS is not None and tuple(buf.shape) == tuple(shape)
                    and buf.dtype == like.dtype and buf.device == like.device
                    and _count_storage_refs(buf) == _LONE_REFS):
                buf = torch.empty(tuple(shape), dtype=like.dtype, device=like.device)
                self._slots[slot] = buf
                self._stamps.pop(slot, None)
            return buf.view(buf.shape)

    def copy_of(self, slot: str, source: Tensor) -> Tensor:
        """A buffer holding ``source``'s values, copied again only when the buffer is new or
        ``source`` changed since (its storage or its version counter). The caller may overwrite
        parts of it that it rewrites on every use."""
        buf = self.take(slot, source.shape, source)
        stamp = (source.data_ptr(), source._version)
        with self._lock:
            if self._stamps.get(slot) != stamp:
                with torch.no_grad():
                    buf.copy_(source)
                self._stamps[slot] = stamp
        return buf

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()
            self._stamps.clear()

    def __len__(self) -> int:
        return len(self._slots)


def dropped_positions(n: int, p: float, device: torch.device) -> Tensor:
    """Sorted flat positions (int64) of the entries that i.i.d. Bernoulli(p) dropout zeroes among n.

    Gaps between dropped entries are geometric on {1, 2, ...} with success probability p, drawn by
    inversion: ⌊log V / log(1 - p)⌋ + 1 for V = 1 - U uniform on (0, 1]. Draws from torch's default
    generator, so ``torch.manual_seed`` makes the positions reproducible.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"dropout: {p!r} is invalid; expected a number in (0, 1) here")
    log_keep = math.log1p(-p)
    mean = n * p
    chunk = int(mean + 6.0 * math.sqrt(mean * (1.0 - p)) + 64)
    found: list[Tensor] = []
    last = -1.0
    while True:
        # 1 - U lies in (0, 1]: no infinite gap. float32 uniforms truncate the geometric tail at
        # probability 2⁻²⁴ (gaps beyond log(2⁻²⁴)/log(1 - p)); the sum runs in float64, exact for
        # integer positions up to 2⁵³.
        u = torch.rand(chunk, device=device)
        gaps = torch.neg(u).add_(1.0).log_().div_(log_keep).floor_().add_(1.0)
        pos = gaps.to(torch.float64).cumsum_(0).add_(last)
        end = int(torch.searchsorted(pos, float(n)))  # positions are increasing; keep those < n
        found.append(pos[:end])
        if end < chunk:
            break
        last = float(pos[-1])
        chunk = max(64, int(4.0 * math.sqrt(mean) + 64))  # rare: the first draw fell short of n
    flat = found[0] if len(found) == 1 else torch.cat(found)
    return flat.to(torch.int64)


def _identity(x: Tensor) -> Tensor:
    return x


def _act_backward(act: Callable[[Tensor], Tensor], pre: Tensor, grad: Tensor) -> Tensor:
    """grad · σ'(pre), by autograd on the activation alone (exact for every supported σ)."""
    if act is _identity:
        return grad
    with torch.enable_grad():
        t = pre.detach().requires_grad_(True)
        (out,) = torch.autograd.grad(act(t), t, grad)
    return out


@dataclass(frozen=True)
class StageSpec:
    """One stage S(x) = scale · Drop_p(σ2(σ1(x Dᵀ + c) Uᵀ + e)) of the chain; ``transpose_out``
    produces S(x)ᵀ directly (activations and dropout are elementwise, so they commute with it)."""

    act1: Callable[[Tensor], Tensor]
    act2: Callable[[Tensor], Tensor]
    dropout: float
    transpose_out: bool
    scale: float


def _forward_stage(spec: StageSpec, x: Tensor, down: Tensor, up: Tensor, c: Tensor | None,
                   e: Tensor | None, out: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """(u, hidden, y, pre-activation v if σ2 is not the identity); y is ``out`` unless σ2 ≠ id."""
    if not spec.transpose_out:
        # u = x Dᵀ computed as (D xᵀ)ᵀ: with the thin matrix on the left, MKL's bmm is 10-40 % faster
        u = torch.bmm(down, x.transpose(1, 2)).transpose(1, 2)  # (T, n, h)
        if c is not None:
            u = u + c
        hid = spec.act1(u)
        v = torch.bmm(hid, up.transpose(1, 2), out=out)  # (T, n, d)
        if e is not None:
            v.add_(e)
    else:
        u = torch.bmm(down, x.transpose(1, 2))  # (T, h, n)
        if c is not None:
            u = u + c.unsqueeze(-1)
        hid = spec.act1(u)
        v = torch.bmm(up, hid, out=out)  # (T, d, n)
        if e is not None:
            v.add_(e.unsqueeze(-1))
    y = v if spec.act2 is _identity else spec.act2(v)
    return u, hid, y, (None if spec.act2 is _identity else v)


def _backward_stage(spec: StageSpec, gy: Tensor, x: Tensor, params: Sequence[Tensor | None], u: Tensor,
                    hid: Tensor, v: Tensor | None, dropped: Tensor | None, gx_out: Tensor | None,
                    gx_transposed: bool) -> tuple[Tensor | None, ...]:
    """Gradients (x, down, up, c, e) of one stage; ``gy`` is owned and overwritten.

    ``params`` are the stage's (down, up, down bias, up bias); ``gx_out`` receives the gradient of
    x (of xᵀ with ``gx_transposed``), or None to skip it.
    """
    down, up, c, e = params
    assert down is not None and up is not None  # a stage's matrices are always there (biases may not be)
    if dropped is not None:
        gy.view(-1).index_fill_(0, dropped, 0.0)
    if spec.scale != 1.0:
        gy.mul_(spec.scale)
    gv = gy if v is None else _act_backward(spec.act2, v, gy)
    if not spec.transpose_out:  # v = hid Uᵀ + e, u = x Dᵀ + c
        ge = gv.sum((0, 1)) if e is not None else None
        gup = torch.bmm(hid.transpose(1, 2), gv).transpose(1, 2)  # = gvᵀ hid, thin matrix on the left
        gu = _act_backward(spec.act1, u, torch.bmm(gv, up))  # (T, n, h)
        gc = gu.sum((0, 1)) if c is not None else None
        gdown = torch.bmm(gu.transpose(1, 2), x)
        gu_rows = gu  # gx = gu D, gxᵀ = Dᵀ guᵀ
        gu_cols = gu.transpose(1, 2)
    else:  # vᵀ = U hidᵀ + e, uᵀ = D xᵀ + c
        ge = gv.sum((0, 2)) if e is not None else None
        gup = torch.bmm(gv, hid.transpose(1, 2))
        gu = _act_backward(spec.act1, u, torch.bmm(up.transpose(1, 2), gv))  # (T, h, n)
        gc = gu.sum((0, 2)) if c is not None else None
        gdown = torch.bmm(gu, x)
        gu_rows = gu.transpose(1, 2)  # gx = guᵀ D, gxᵀ = Dᵀ gu
        gu_cols = gu
    gx = None
    if gx_out is not None:
        if gx_transposed:
            gx = torch.bmm(down.transpose(1, 2), gu_cols, out=gx_out)
        else:
            gx = torch.bmm(gu_rows, down, out=gx_out)
    return gx, gdown, gup, gc, ge


class _StagesFunction(torch.autograd.Function):
    """x0 → S_1 → (S_2 on S_1ᵀ): the whole generator chain as one node of the autograd graph.

    Inputs after the non-tensor ones: x0, then per stage (down, up, down bias, up bias). The output is
    the last stage's result, or its T slices as separate outputs with ``split`` (so that their
    gradients arrive separately and are gathered into a reused buffer instead of a new stack).
    """

    @staticmethod
    def forward(ctx, specs, workspace, split, x0, *tensors):
        n_st = len(specs)
        params = [tensors[4 * i: 4 * i + 4] for i in range(n_st)]
        ws = workspace if workspace is not None else Workspace()
        x = x0
        saved: list[Tensor | None] = []
        drops: list[Tensor | None] = []
        for i, (spec, (down, up, c, e)) in enumerate(zip(specs, params)):
            last = i == n_st - 1
            t, n = x.shape[0], x.shape[1]
            d_out = up.shape[1]
            shape = (t, d_out, n) if spec.transpose_out else (t, n, d_out)
            out = ws.take("out" if last else f"stage{i}", shape, x0)
            u, hid, y, v = _forward_stage(spec, x, down, up, c, e, out)
            dropped = None
            if spec.dropout > 0.0:
                dropped = dropped_positions(y.numel(), spec.dropout, y.device)
                y.view(-1).index_fill_(0, dropped, 0.0)
            if spec.scale != 1.0:
                y.mul_(spec.scale)
            saved += [x, u, hid, v]
            drops.append(dropped)
            x = y.transpose(1, 2)  # the next stage works on the transpose
        result = x.transpose(1, 2)
        ctx.specs, ctx.workspace, ctx.split = specs, workspace, split
        ctx.n_saved = len(saved)
        ctx.absent = [t is None for t in saved + drops + list(tensors)]
        ctx.save_for_backward(*[t for t in saved + drops + list(tensors) if t is not None])
        if split:
            return tuple(result.unbind(0))
        return result

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        stored = iter(ctx.saved_tensors)
        values = [None if absent else next(stored) for absent in ctx.absent]
        specs = ctx.specs
        n_st = len(specs)
        saved = values[: ctx.n_saved]
        drops = values[ctx.n_saved: ctx.n_saved + n_st]
        params = values[ctx.n_saved + n_st:]
        ws = ctx.workspace if ctx.workspace is not None else Workspace()
        need = ctx.needs_input_grad
        like = saved[0]
        assert like is not None
        shape_last = (len(grads), *grads[0].shape) if ctx.split else tuple(grads[0].shape)
        gy = ws.take("grad_out", shape_last, like)
        if ctx.split:
            torch.stack(grads, out=gy)
        else:
            gy.copy_(grads[0])
        out_grads: list[Tensor | None] = [None] * (4 * n_st)
        gx0 = None
        for i in reversed(range(n_st)):
            x, u, hid, v = saved[4 * i: 4 * i + 4]
            assert x is not None and u is not None and hid is not None  # only v and biases may be absent
            stage_params = params[4 * i: 4 * i + 4]
            if i > 0:  # x is the previous stage's result, transposed: its gradient in that layout
                gx_out = ws.take(f"grad_stage{i - 1}", (x.shape[0], x.shape[2], x.shape[1]), like)
            elif need[3]:
                gx_out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
            else:
                gx_out = None
            gx, gdown, gup, gc, ge = _backward_stage(specs[i], gy, x, stage_params, u, hid, v,
                                                     drops[i], gx_out, gx_transposed=i > 0)
            out_grads[4 * i: 4 * i + 4] = [gdown, gup, gc, ge]
            if i > 0:
                gy = gx
            else:
                gx0 = gx
        tensor_grads = [g if need[4 + j] else None for j, g in enumerate(out_grads)]
        return (None, None, None, gx0, *tensor_grads)


def run_stages(specs: Sequence[StageSpec], x0: Tensor,
               params: Sequence[tuple[Tensor, Tensor, Tensor | None, Tensor | None]],
               workspace: Workspace | None = None, split: bool = False) -> Tensor | tuple[Tensor, ...]:
    """Run the stage chain on the stack ``x0`` (T, n, d); see :class:`StageSpec`."""
    flat: list[Tensor | None] = []
    for down, up, c, e in params:
        flat += [down, up, c, e]
    device = x0.device.type
    if torch.is_autocast_enabled(device):  # what autocast would give the matmuls, fixed up front
        dtype = torch.get_autocast_dtype(device)
        x0 = x0.to(dtype)
        flat = [None if t is None else t.to(dtype) for t in flat]
    with torch.autocast(device, enabled=False):  # out= buffers need one dtype throughout
        return _StagesFunction.apply(tuple(specs), workspace, split, x0, *flat)
