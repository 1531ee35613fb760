"""``MethodAdapter``: the one interface every fine-tuning method offers to trainables and studies."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from genft_search.method._targets import head_named_parameters

__all__ = ["MethodAdapter"]

HEAD_PREFIX = "head::"


class MethodAdapter:
    """A method attached to a model: its own trainable parameters (no head), the head, merge/unmerge.

    Subclasses implement :meth:`named_parameters`; attaching freezes everything except
    :meth:`trainable_parameters` (own + task head), which is what the optimiser should get.
    """

    name: str = "base"

    def __init__(self, model: nn.Module, family: str) -> None:
        self.model = model
        self.family = family
        self._merged = False

    # -- parameters -------------------------------------------------------------------------------
    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        raise NotImplementedError

    def parameters(self) -> Iterator[nn.Parameter]:
        for _, p in self.named_parameters():
            yield p

    def num_parameters(self) -> int:
        """The method's own parameter count (the paper's Params column: head excluded)."""
        return sum(p.numel() for p in self.parameters())

    def head_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return head_named_parameters(self.model)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Own parameters plus the task head, each once: what the optimiser trains."""
        seen: set[int] = set()
        out = []
        for p in [*self.parameters(), *(p for _, p in self.head_named_parameters())]:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def _freeze_all_but_trainable(self) -> None:
        keep = {id(p) for p in self.trainable_parameters()}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in keep)

    # -- merge ------------------------------------------------------------------------------------
    @property
    def merged(self) -> bool:
        return self._merged

    def merge(self) -> None:
        """Fold the method into the frozen weights (inference at frozen-model speed). No-op by default."""
        self._merged = True

    def unmerge(self) -> None:
        self._merged = False

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self, *, include_head: bool = False) -> dict[str, Tensor]:
        """Own tensors by name (detached); with ``include_head`` also the head as ``head::<model name>``."""
        out = {n: p.detach() for n, p in self.named_parameters()}
        if include_head:
            out.update({HEAD_PREFIX + n: p.detach() for n, p in self.head_named_parameters()})
        return out

    def load_state_dict(self, state: Mapping[str, Tensor], strict: bool = True) -> None:
        """Copy tensors saved by :meth:`state_dict` in place (head entries optional).

        A merged adapter is unmerged first and merged again with the loaded tensors, so the weights
        never keep the old ΔW.
        """
        was_merged = self.merged
        self.unmerge()
        self._load(state, strict)
        if was_merged:
            self.merge()

    def _load(self, state: Mapping[str, Tensor], strict: bool) -> None:
        own = dict(self.named_parameters())
        head = {HEAD_PREFIX + n: p for n, p in self.head_named_parameters()}
        unexpected = [k for k in state if k not in own and k not in head]
        missing = [k for k in own if k not in state]
        if strict and (unexpected or missing):
            raise KeyError(f"{self.name} adapter state: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            for k, v in state.items():
                target = own.get(k, head.get(k))
                if target is None:
                    continue
                if tuple(target.shape) != tuple(v.shape):
                    raise ValueError(f"{self.name} adapter state: {k} has shape {tuple(v.shape)}; "
                                     f"expected {tuple(target.shape)}")
                target.copy_(v)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(family={self.family!r}, num_parameters={self.num_parameters()}, "
                f"merged={self.merged})")
