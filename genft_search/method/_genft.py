"""GenFT attached to a model: one generator, every adapted matrix generated in one batched pass.

How the forward works: a pre-hook on the root model opens a "pass"; the first adapted Linear that runs
asks the shared state for ΔW, which generates all T matrices at once from the stacked original W0
(cached, rebuilt only if a weight changes), and every adapted Linear then adds its slice to its weight
before its single matmul. The Linears keep their class's behaviour and parameter names: only their
class is swapped for a subclass whose forward does this, and :meth:`GenFTAdapter.detach` swaps back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, cast, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genft_search.method._base import MethodAdapter
from genft_search.method._generator import GenFTGenerator
from genft_search.method._targets import AdaptedModule, detect_family, find_adapted_modules
from genft_search.method.config import GenFTConfig

__all__ = ["GenFTAdapter", "attach_genft", "load_genft"]

GENERATOR_ATTR = "genft"
_FORMAT = "genft-search/genft-adapter"
_FORMAT_VERSION = "1"


class _RowDeltaLinear(torch.autograd.Function):
    """y = x (W + ΔW on some row blocks)ᵀ + bias with one matmul; backward computes ΔW's gradient only
    for the adapted row blocks (for a fused qkv adapted on q and v, the k rows cost nothing)."""

    @staticmethod
    def forward(ctx, x, weight, bias, starts, w, *deltas):
        # w holds the weight outside the adapted row blocks already (a reused buffer, see
        # _GenFTState.effective_weight): only the adapted blocks are written, W0 + ΔW in one pass.
        for s, dlt in zip(starts, deltas):
            torch.add(weight[s : s + dlt.shape[0]], dlt.to(w.dtype), out=w[s : s + dlt.shape[0]])
        ctx.starts = starts
        ctx.sizes = [dlt.shape[0] for dlt in deltas]
        ctx.delta_dtypes = [dlt.dtype for dlt in deltas]
        ctx.save_for_backward(x, w)
        return F.linear(x, w, bias)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        need = ctx.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])  # one copy at most (g is often a permuted view), shared below
        gx = (g2 @ w.to(g.dtype)).view(x.shape).to(x.dtype) if need[0] else None
        x2 = x.reshape(-1, x.shape[-1]).to(g.dtype)
        gw = (g2.t() @ x2).to(w.dtype) if need[1] else None
        gb = g2.sum(0) if need[2] else None
        gds: list[Tensor | None] = []
        for i, (s, n) in enumerate(zip(ctx.starts, ctx.sizes)):
            if not need[5 + i]:
                gds.append(None)
            elif gw is not None:
                gds.append(gw[s : s + n].to(ctx.delta_dtypes[i]))
            else:
                gds.append((g2[:, s : s + n].t() @ x2).to(ctx.delta_dtypes[i]))
        return (gx, gw, gb, None, None, *gds)


class _GenFTLinear(nn.Linear):
    """An ``nn.Linear`` whose weight gets its generated ΔW rows added before the (single) matmul."""

    _genft_state: _GenFTState
    _genft_slots: tuple[int, ...]
    _genft_starts: tuple[int, ...]

    def forward(self, x: Tensor) -> Tensor:
        state = self._genft_state
        if state.merged:
            return F.linear(x, self.weight, self.bias)
        deltas = state.deltas()
        mine = [deltas[t] for t in self._genft_slots]
        if len(mine) == 1 and mine[0].shape[0] == self.out_features:
            return F.linear(x, self.weight + mine[0].to(self.weight.dtype), self.bias)
        if torch.is_grad_enabled() and (x.requires_grad or any(d.requires_grad for d in mine)):
            w = state.effective_weight(self)
            return _RowDeltaLinear.apply(x, self.weight, self.bias, self._genft_starts, w, *mine)
        w = self.weight.clone()
        for s, dlt in zip(self._genft_starts, mine):
            w[s : s + dlt.shape[0]] += dlt.to(w.dtype)
        return F.linear(x, w, self.bias)


class _GenFTState:
    """What the adapted Linears share: the generator, the stacked original W0, the current pass's ΔW."""

    def __init__(self, generator: GenFTGenerator, modules: list[AdaptedModule]) -> None:
        self.generator = generator
        self.modules = modules
        self.targets = [(m, s) for m in modules for _, s in m.rows]
        self.d = generator.d
        self.merged = False
        self.merged_delta: Tensor | None = None
        self.active = False
        self._pass_deltas: tuple[Tensor, ...] | None = None
        self._w0: Tensor | None = None
        self._w0_key: tuple | None = None
        self._det_cache: tuple[tuple, tuple[Tensor, ...]] | None = None

    # -- the original frozen weights, stacked once ------------------------------------------------
    def _weights_key(self) -> tuple:
        return tuple((m.module.weight.data_ptr(), m.module.weight._version) for m in self.modules)

    def w0(self) -> Tensor:
        key = self._weights_key()
        if self._w0 is None or key != self._w0_key:
            if self.merged:
                raise RuntimeError("GenFT: the adapted weights changed while merged; unmerge first")
            d = self.d
            with torch.no_grad():
                self._w0 = torch.stack([m.module.weight[s : s + d] for m, s in self.targets])
            self._w0_key = key
        return self._w0

    def _weights_changed_by_us(self) -> None:
        """merge/unmerge edit the weights in place; the stacked W0 stays the original one."""
        if self._w0 is not None:
            self._w0_key = self._weights_key()

    def effective_weight(self, module: _GenFTLinear) -> Tensor:
        """A buffer equal to ``module.weight`` for W0 + ΔW, reused between training passes (the
        unadapted rows are copied only when the weight changes); see :class:`Workspace`."""
        return self.generator._workspace.copy_of(f"weight:{module._genft_slots[0]}", module.weight)

    # -- generation -------------------------------------------------------------------------------
    @overload
    def compute(self, training: bool | None = None, *, split: Literal[True]) -> tuple[Tensor, ...]: ...

    @overload
    def compute(self, training: bool | None = None, split: Literal[False] = False) -> Tensor: ...

    def compute(self, training: bool | None = None, split: bool = False) -> Tensor | tuple[Tensor, ...]:
        gen = self.generator
        w0 = self.w0()
        param = next(gen.parameters(), None)
        if param is not None and w0.dtype != param.dtype:
            w0 = w0.to(param.dtype)
        return gen(w0, training=training, split=split)

    def deltas(self) -> tuple[Tensor, ...]:
        """ΔW per target for the current forward: generated once per root forward pass."""
        if self.active and self._pass_deltas is not None:
            return self._pass_deltas
        gen = self.generator
        deterministic = not torch.is_grad_enabled() and not (gen.training and gen.config.dropout > 0)
        if deterministic:  # eval/no-grad: reuse while neither the generator nor W0 changed
            key = (self._weights_key(), tuple((p.data_ptr(), p._version) for p in gen.parameters()))
            if self._det_cache is None or self._det_cache[0] != key:
                self._det_cache = (key, self.compute(split=True))
            out = self._det_cache[1]
        else:
            self._det_cache = None
            out = self.compute(split=True)
        if self.active:
            self._pass_deltas = out
        return out

    def begin(self) -> None:
        self.active = True
        self._pass_deltas = None

    def end(self) -> None:
        self.active = False
        self._pass_deltas = None

    # -- merge ------------------------------------------------------------------------------------
    def merge(self) -> None:
        if self.merged:
            return
        with torch.no_grad():
            delta = self.compute(training=False)
            for (m, s), dlt in zip(self.targets, delta):
                m.module.weight[s : s + self.d] += dlt.to(m.module.weight.dtype)
        self.merged_delta = delta
        self.merged = True
        self._det_cache = None
        self._weights_changed_by_us()

    def unmerge(self) -> None:
        if not self.merged:
            return
        assert self.merged_delta is not None  # merge() keeps it
        with torch.no_grad():
            for (m, s), dlt in zip(self.targets, self.merged_delta):
                m.module.weight[s : s + self.d] -= dlt.to(m.module.weight.dtype)
        self.merged = False
        self.merged_delta = None
        self._weights_changed_by_us()


class _BeginPass:
    def __init__(self, state: _GenFTState) -> None:
        self.state = state

    def __call__(self, module: nn.Module, args: Any) -> None:
        self.state.begin()


class _EndPass:
    def __init__(self, state: _GenFTState) -> None:
        self.state = state

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        self.state.end()


class GenFTAdapter(MethodAdapter):
    """GenFT attached to a timm ViT or a transformers text encoder (see :func:`attach_genft`)."""

    name = "genft"

    def __init__(self, model: nn.Module, family: str, config: GenFTConfig, generator: GenFTGenerator,
                 state: _GenFTState, hooks: list) -> None:
        super().__init__(model, family)
        self.config = config
        self.generator = generator
        self._state = state
        self._hooks = hooks
        self._attached = True

    @property
    def adapted_modules(self) -> list[AdaptedModule]:
        return list(self._state.modules)

    @property
    def merged(self) -> bool:
        return self._state.merged

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return self.generator.named_parameters()

    def delta_weights(self) -> dict[str, Tensor]:
        """``{original weight name: ΔW of that weight's full shape}`` (eval mode: no dropout; detached).

        For a fused qkv the unadapted row blocks (k by default) are zero. While merged, the cached ΔW.
        """
        st = self._state
        with torch.no_grad():
            merged = st.merged_delta if st.merged else None
            delta = merged if merged is not None else st.compute(training=False)
            out: dict[str, Tensor] = {}
            for (m, s), dlt in zip(st.targets, delta):
                full = out.get(m.param_name)
                if full is None:
                    full = out[m.param_name] = torch.zeros_like(m.module.weight, dtype=dlt.dtype)
                full[s : s + st.d] = dlt
        return out

    def merge(self) -> None:
        """Add ΔW (computed from the original W0, eval mode) into the weights; cache it for unmerge."""
        self._state.merge()

    def unmerge(self) -> None:
        """Subtract the cached ΔW again."""
        self._state.unmerge()

    def save(self, path: str | Path, *, include_head: bool = False) -> None:
        """Write the adapter (and optionally the head) as safetensors, the resolved config in metadata."""
        from safetensors.torch import save_file

        state = self.state_dict(include_head=include_head)
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        meta = {"format": _FORMAT, "format_version": _FORMAT_VERSION, "family": self.family,
                "config": json.dumps(self.config.to_dict(), sort_keys=True)}
        save_file(tensors, str(path), metadata=meta)

    def detach(self) -> None:
        """Remove GenFT from the model: unmerge, restore the plain Linears, drop hooks and generator."""
        if not self._attached:
            return
        self.unmerge()
        for h in self._hooks:
            h.remove()
        for m in self._state.modules:
            m.module.__class__ = nn.Linear
            for attr in ("_genft_state", "_genft_slots", "_genft_starts"):
                m.module.__dict__.pop(attr, None)
        if getattr(self.model, GENERATOR_ATTR, None) is self.generator:
            delattr(self.model, GENERATOR_ATTR)
        self._attached = False


def attach_genft(model: nn.Module, config: GenFTConfig | Mapping[str, Any] | None = None) -> GenFTAdapter:
    """Attach GenFT to ``model`` in place and freeze everything but the generator and the task head.

    timm ``VisionTransformer``: the q and v row blocks of every block's fused ``qkv``; transformers
    BERT/RoBERTa-family encoders (and ``*ForSequenceClassification``): ``query`` and ``value`` of every
    layer (``docs/method.md``, "Where it is attached"; arXiv 2506.11042, §3). The generator becomes
    ``model.genft`` (so ``model.to``/``train``/``eval`` reach it).

    Args:
        model: the model to adapt, with its task head.
        config: a :class:`GenFTConfig` or its flat mapping (trial config keys); options left ``None``
            take the model family's defaults (:meth:`GenFTConfig.resolve`).

    Returns:
        The adapter: its parameters, ``merge``/``unmerge``, ``delta_weights`` and state dict.

    Raises:
        ValueError: an unsupported model, one that already has GenFT attached, adapted projections that
            are not plain square ``nn.Linear`` of one width, or an invalid config.
    """
    if config is None:
        config = GenFTConfig()
    elif not isinstance(config, GenFTConfig):
        config = GenFTConfig.from_mapping(config)
    family = detect_family(model)
    cfg = config.resolve(family)
    assert cfg.targets is not None  # resolve() sets them
    modules = find_adapted_modules(model, family, cfg.targets)
    if hasattr(model, GENERATOR_ATTR) or any(isinstance(m.module, _GenFTLinear) for m in modules):
        raise ValueError("model: already has a GenFT adapter attached; detach it first")
    for m in modules:
        if type(m.module) is not nn.Linear:
            raise ValueError(f"model: {m.name} is a {type(m.module).__name__}; GenFT adapts plain nn.Linear")
    d = modules[0].module.in_features
    if any(m.module.in_features != d for m in modules):
        raise ValueError("model: adapted projections have different widths; GenFT needs one d")
    # Which (A, B) pair serves each target: one per layer (block scope) or one per target (module).
    units: list[int] = []
    for m in modules:
        for _ in m.rows:
            units.append(m.layer if cfg.specific_scope == "block" else len(units))
    weight = modules[0].module.weight
    generator = GenFTGenerator(cfg, d, units)
    dtype = weight.dtype if weight.dtype.is_floating_point else None
    generator.to(device=weight.device, dtype=dtype)
    generator.train(model.training)
    model.add_module(GENERATOR_ATTR, generator)

    state = _GenFTState(generator, modules)
    t = 0
    for m in modules:
        m.module.__class__ = _GenFTLinear
        lin = cast(_GenFTLinear, m.module)
        lin._genft_state = state
        lin._genft_slots = tuple(range(t, t + len(m.rows)))
        lin._genft_starts = tuple(s for _, s in m.rows)
        t += len(m.rows)
    hooks = [model.register_forward_pre_hook(_BeginPass(state)),
             model.register_forward_hook(_EndPass(state), always_call=True)]
    adapter = GenFTAdapter(model, family, cfg, generator, state, hooks)
    adapter._freeze_all_but_trainable()
    return adapter


def load_genft(model: nn.Module, path: str | Path, *, strict: bool = True) -> GenFTAdapter:
    """Re-attach a saved GenFT adapter (config from the file's metadata) to a fresh model and load it."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a GenFT adapter file (metadata format {meta.get('format')!r})")
    family = detect_family(model)
    if meta.get("family") != family:
        raise ValueError(f"{path}: adapter was saved for family {meta.get('family')!r}; model is {family!r}")
    adapter = attach_genft(model, GenFTConfig(**json.loads(meta["config"])))
    tensors = load_file(str(path))
    adapter.load_state_dict(tensors, strict=strict)
    return adapter
