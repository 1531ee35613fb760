"""Where methods attach: model family detection, the q/v target matrices and the task head."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeGuard, cast

from torch import nn

__all__ = ["AdaptedModule", "detect_family", "find_adapted_modules", "head_named_parameters"]

# Self-attention projections per text architecture: BERT/RoBERTa/ELECTRA/XLM-R/MiniLM..., DistilBERT.
_TEXT_PROJECTIONS = ({"q": "query", "k": "key", "v": "value"}, {"q": "q_lin", "k": "k_lin", "v": "v_lin"})
_FUSED_ROWS = {"q": 0, "k": 1, "v": 2}


@dataclass(frozen=True)
class AdaptedModule:
    """A Linear whose weight gets ΔW on some row blocks.

    ``rows`` lists (target kind, first row) per adapted d × d block; a text projection has one block at
    row 0, a timm fused qkv up to three (q at 0, k at d, v at 2d).
    """

    name: str
    module: nn.Linear
    layer: int
    rows: tuple[tuple[str, int], ...]

    @property
    def param_name(self) -> str:
        return f"{self.name}.weight" if self.name else "weight"


def _is_linear(m: object) -> TypeGuard[nn.Linear]:
    """A Linear, or one wrapped as ``base_layer`` (PEFT layers, ``LoraQVLinear``): detection still works
    after LoRA was attached."""
    return isinstance(m, nn.Linear) or isinstance(getattr(m, "base_layer", None), nn.Linear)


def _in_out(m: nn.Module) -> tuple[int, int]:
    lin = m if isinstance(m, nn.Linear) else cast(nn.Linear, m.base_layer)
    return lin.in_features, lin.out_features


def _vit_qkv(model: nn.Module) -> list[tuple[str, nn.Linear]] | None:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential | nn.ModuleList) or len(blocks) == 0:
        return None
    out: list[tuple[str, nn.Linear]] = []
    for i, blk in enumerate(blocks):
        qkv = getattr(getattr(blk, "attn", None), "qkv", None)
        if not _is_linear(qkv) or _in_out(qkv)[1] != 3 * _in_out(qkv)[0]:
            return None
        out.append((f"blocks.{i}.attn.qkv", qkv))
    return out


def _text_attention(model: nn.Module) -> list[tuple[str, dict[str, tuple[str, nn.Linear]]]]:
    found: list[tuple[str, dict[str, tuple[str, nn.Linear]]]] = []
    for name, mod in model.named_modules():
        for names in _TEXT_PROJECTIONS:
            children = {k: getattr(mod, child, None) for k, child in names.items()}
            if all(_is_linear(c) for c in children.values()):
                prefix = f"{name}." if name else ""
                found.append((name, {k: (prefix + names[k], cast(nn.Linear, children[k])) for k in names}))
                break
    return found


def detect_family(model: nn.Module) -> str:
    """``"vit"`` for a timm VisionTransformer (fused qkv per block), ``"text"`` for a BERT/RoBERTa-family
    encoder or its ``*ForSequenceClassification`` wrapper."""
    if _vit_qkv(model) is not None:
        return "vit"
    if _text_attention(model):
        return "text"
    raise ValueError(
        f"model: {type(model).__name__} is not supported; expected a timm VisionTransformer or a "
        "transformers BERT/RoBERTa-family encoder (query/key/value projections)"
    )


def find_adapted_modules(model: nn.Module, family: str, targets: Sequence[str]) -> list[AdaptedModule]:
    """The adapted Linears in forward order (layer-major; within a layer q, k, v order)."""
    order = [t for t in ("q", "k", "v") if t in targets]
    if family == "vit":
        qkvs = _vit_qkv(model)
        if qkvs is None:
            raise ValueError(f"model: {type(model).__name__} has no timm ViT blocks with a fused attn.qkv")
        return [AdaptedModule(name, lin, i, tuple((t, _FUSED_ROWS[t] * lin.in_features) for t in order))
                for i, (name, lin) in enumerate(qkvs)]
    if family == "text":
        layers = _text_attention(model)
        if not layers:
            raise ValueError(f"model: {type(model).__name__} has no query/key/value attention projections")
        out = []
        for i, (_, proj) in enumerate(layers):
            for t in order:
                name, lin = proj[t]
                if lin.in_features != lin.out_features:
                    shape = f"{lin.out_features}x{lin.in_features}"
                    raise ValueError(f"model: {name} is {shape}; GenFT needs square projections")
                out.append(AdaptedModule(name, lin, i, ((t, 0),)))
        return out
    raise ValueError(f"family: {family!r} is invalid; expected vit or text")


def _head_modules(model: nn.Module) -> list[nn.Module]:
    get = getattr(model, "get_classifier", None)  # timm
    if callable(get):
        head = get()
        return [head] if isinstance(head, nn.Module) else []
    # transformers *ForSequenceClassification (DistilBERT adds a fresh pre_classifier before it)
    heads = [getattr(model, attr, None) for attr in ("pre_classifier", "classifier", "score")]
    return [h for h in heads if isinstance(h, nn.Module)]


def head_named_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """The task head's parameters, named as in ``model`` (timm ``head``, transformers ``classifier``)."""
    ids = {id(p) for head in _head_modules(model) for p in head.parameters()}
    for name, p in model.named_parameters():
        if id(p) in ids:
            yield name, p
