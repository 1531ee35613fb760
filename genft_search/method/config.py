"""``GenFTConfig``: the method's hyperparameters, validated, with per-family defaults.

``None`` for a family-dependent option means "the model family's default" (``docs/method.md``),
filled in by :meth:`GenFTConfig.resolve` (timm ViT follows the authors' ViT code, text encoders their
text code). The paper's short codes (K-U, X-U, N, Z; R, LR, T, G, I; ``genft_search.paper``) are
accepted and normalised.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from genft_search.method.functional import ABLATIONS, ACTIVATIONS, DELTA_LAYOUTS, RATIO_ON
from genft_search.paper import ACTIVATION_CODES, INIT_CODES

__all__ = ["INITS", "GenFTConfig"]

Family = Literal["vit", "text"]
FAMILIES: tuple[str, ...] = ("vit", "text")
INITS: tuple[str, ...] = ("zeros", "kaiming_uniform", "xavier_uniform", "normal")
SHARED_INITS: tuple[str, ...] = ("trunc_normal", *INITS)
SCOPES: tuple[str, ...] = ("block", "module")
TARGETS: tuple[str, ...] = ("q", "k", "v")

# Spec "Defaults" and "Initialisation": what reproduces the authors' code (and the paper's Params).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "vit": {"ratio_on": "generator", "delta_layout": "transposed", "shared_init": "trunc_normal",
            "specific_scope": "block", "bias": False},
    "text": {"ratio_on": "w0", "delta_layout": "linear", "shared_init": "kaiming_uniform",
             "specific_scope": "module", "bias": True},
}
# What an ablation sets a dimension to when it removes the other one and this one is 0.
ABLATION_FALLBACK_DIM = 8
# Why resolve() gave A and B another init than the configured one (``GenFTConfig.init_reason``).
INIT_REASONS: dict[str, str] = {
    "fallback_dim": "specific_dim 0 became 8 (without_shared): new factors, initialised as the shared ones",
    "zero_factor": "shared factors off and a zero-initialised A or B: ΔW and its gradients would stay 0",
}


def _choice(field: str, value: Any, allowed: tuple[str, ...], codes: Mapping[str, str] | None = None) -> str:
    if isinstance(value, str):
        value = (codes or {}).get(value.strip(), value.strip())
        if value in allowed:
            return value
    extra = f" (or codes {', '.join(codes)})" if codes else ""
    expected = ", ".join(allowed)
    raise ValueError(f"GenFTConfig.{field}: {value!r} is invalid; expected one of {expected}{extra}")


def _dim(field: str, value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0:
        return int(value)
    raise ValueError(f"GenFTConfig.{field}: {value!r} is invalid; expected an integer >= 0")


def _real(field: str, value: Any, lo: float, hi: float, lo_open: bool, hi_open: bool) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        if ok:
            return v
    rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    raise ValueError(f"GenFTConfig.{field}: {value!r} is invalid; expected a number in {rng}")


def _targets(value: Any) -> tuple[str, ...]:
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    try:
        out = tuple(str(t).strip().lower()[:1] if str(t).lower() in ("query", "key", "value") else str(t)
                    for t in items)
    except TypeError:
        out = ()
    if out and all(t in TARGETS for t in out) and len(set(out)) == len(out):
        return tuple(t for t in TARGETS if t in out)  # canonical order: rows of the fused qkv
    raise ValueError(f"GenFTConfig.targets: {value!r} is invalid; expected distinct names from q, k, v")


@dataclass(frozen=True)
class GenFTConfig:
    """GenFT hyperparameters (spec notation: a = shared_dim, b = specific_dim, r = w0_ratio, s = scaling).

    ``bias``, ``ratio_on``, ``delta_layout``, ``shared_init``, ``specific_scope`` and ``targets`` left
    as ``None`` take the model family's default when attached (see :meth:`resolve`). ``init_reason``
    is set by :meth:`resolve` only: why ``init_a``/``init_b`` are not the configured ones (a key of
    ``INIT_REASONS``), ``None`` when they are.
    """

    shared_dim: int = 82
    specific_dim: int = 2
    sigma1: str = "identity"
    sigma2: str = "identity"
    init_a: str = "kaiming_uniform"
    init_b: str = "kaiming_uniform"
    w0_ratio: float = 1.0
    scaling: float = 1.0
    dropout: float = 0.1
    bias: bool | None = None
    ratio_on: str | None = None
    delta_layout: str | None = None
    shared_init: str | None = None
    specific_scope: str | None = None
    ablation: str = "full"
    targets: tuple[str, ...] | None = None
    init_reason: str | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "shared_dim", _dim("shared_dim", self.shared_dim))
        put(self, "specific_dim", _dim("specific_dim", self.specific_dim))
        acts = tuple(ACTIVATIONS)
        put(self, "sigma1", _choice("sigma1", self.sigma1, acts, ACTIVATION_CODES))
        put(self, "sigma2", _choice("sigma2", self.sigma2, acts, ACTIVATION_CODES))
        put(self, "init_a", _choice("init_a", self.init_a, SHARED_INITS, INIT_CODES))
        put(self, "init_b", _choice("init_b", self.init_b, SHARED_INITS, INIT_CODES))
        put(self, "w0_ratio", _real("w0_ratio", self.w0_ratio, 0.0, math.inf, True, True))
        put(self, "scaling", _real("scaling", self.scaling, 0.0, math.inf, False, True))
        put(self, "dropout", _real("dropout", self.dropout, 0.0, 1.0, False, True))
        if self.bias is not None:
            if not isinstance(self.bias, (bool, numbers.Integral)) or int(self.bias) not in (0, 1):
                raise ValueError(f"GenFTConfig.bias: {self.bias!r} is invalid; expected true, false or null")
            put(self, "bias", bool(self.bias))
        optional = {"ratio_on": (RATIO_ON, None), "delta_layout": (DELTA_LAYOUTS, None),
                    "shared_init": (SHARED_INITS, INIT_CODES), "specific_scope": (SCOPES, None)}
        for name, (allowed, codes) in optional.items():
            if getattr(self, name) is not None:
                put(self, name, _choice(name, getattr(self, name), allowed, codes))
        put(self, "ablation", _choice("ablation", self.ablation, ABLATIONS))
        if self.targets is not None:
            put(self, "targets", _targets(self.targets))
        if self.init_reason is not None:
            put(self, "init_reason", _choice("init_reason", self.init_reason, tuple(INIT_REASONS)))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> GenFTConfig:
        """Pick this config's keys out of a flat trial config (other keys, e.g. ``lr``, are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (mapping or {}).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``targets`` as a list)."""
        out = dataclasses.asdict(self)
        if out["targets"] is not None:
            out["targets"] = list(out["targets"])
        return out

    def resolve(self, family: str) -> GenFTConfig:
        """The fully specified config for ``family``: family defaults filled in, ablation rules applied.

        without_shared: a = 0 (if b was 0, b = 8); without_specific: b = 0 (if a was 0, a = 8), as in
        the paper's ablation (arXiv 2506.11042, §4.3). With the shared factors off, A and B may get
        another init than ``init_a``/``init_b`` so that the variant can learn (see
        :meth:`_live_specific_init`); ``init_a``/``init_b`` then hold the init used and ``init_reason``
        says why. Idempotent. Raises ``ValueError`` if the generator would have no hidden units.
        """
        if family not in FAMILIES:
            raise ValueError(f"family: {family!r} is invalid; expected one of {', '.join(FAMILIES)}")
        defaults = FAMILY_DEFAULTS[family]
        changes: dict[str, Any] = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if self.targets is None:
            changes["targets"] = ("q", "v")
        a, b = self.shared_dim, self.specific_dim
        if self.ablation == "without_shared":
            a, b = 0, b or ABLATION_FALLBACK_DIM
        elif self.ablation == "without_specific":
            a, b = a or ABLATION_FALLBACK_DIM, 0
        elif a == 0 and b == 0:
            raise ValueError(
                "GenFTConfig.shared_dim: shared_dim and specific_dim are both 0; expected a + b > 0"
            )
        changes.update(shared_dim=a, specific_dim=b)
        shared_init = str(changes.get("shared_init", self.shared_init))
        changes.update(self._live_specific_init(a, b, b != self.specific_dim, shared_init))
        return dataclasses.replace(self, **changes)

    def _live_specific_init(self, a: int, b: int, new_factors: bool, shared_init: str) -> dict[str, Any]:
        """Init changes for A and B when the shared factors are off (a = 0), else none.

        Then every hidden unit is a specific one and ΔW is a product of A and B only: with both stages
        it is quadratic in B·A, so one zero factor keeps ΔW and all its gradients at 0 for ever; with
        one stage (without_row/without_column) it is linear, as in LoRA, and only two zero factors do.
        Factors created by the "0 becomes 8" rule had no init of their own in the setting. In both
        cases A and B are initialised as the shared factors are (``shared_init``; trunc_normal if that
        is zeros), which keeps B·A ≠ 0 at the start.
        """
        if a or not b:
            return {}
        zeros = (self.init_a == "zeros") + (self.init_b == "zeros")
        one_stage = self.ablation in ("without_row", "without_column")
        if new_factors:
            reason = "fallback_dim"
        elif zeros == 2 or (zeros == 1 and not one_stage):
            reason = "zero_factor"
        else:
            return {}
        init = shared_init if shared_init != "zeros" else "trunc_normal"
        return {"init_a": init, "init_b": init, "init_reason": reason}

    @property
    def is_resolved(self) -> bool:
        return all(getattr(self, k) is not None for k in (*FAMILY_DEFAULTS["vit"], "targets"))
