"""The ablation file: a study file (issue 3 schema) plus ``base``, ``variants``, ``seeds``, ``from_study``.

The search keys of a study file (``params``, ``space``, ``sampler``, ``warm_start``) have no meaning
here, since the grid is variant × seed; naming them is an error rather than silently ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genft_search.config import StudyConfig, expand_env, parse_study_config, read_yaml_file
from genft_search.errors import UserError
from genft_search.method.functional import ABLATIONS

__all__ = [
    "DEFAULT_SEEDS",
    "VARIANTS",
    "AblationConfig",
    "AblationSpec",
    "load_ablation_config",
    "parse_ablation_config",
]

#: the paper's Table 4 rows, in its order (``full`` first: every Δ is against it)
VARIANTS: tuple[str, ...] = tuple(ABLATIONS)
DEFAULT_SEEDS: tuple[int, ...] = (42, 43, 44)
ABLATION_KEYS = ("base", "variants", "seeds", "from_study")
_SEARCH_KEYS = ("params", "space", "sampler", "warm_start")


class AblationSpec(BaseModel):
    """What to ablate around: the base setting, the variants and the seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    base: Literal["fixed", "best", "paper"] = "fixed"
    variants: Annotated[tuple[str, ...], Field(min_length=1)] = VARIANTS
    seeds: Annotated[int, Field(ge=1, le=100)] | Annotated[tuple[int, ...], Field(min_length=1)] = (
        DEFAULT_SEEDS
    )
    from_study: str | None = None

    @field_validator("variants")
    @classmethod
    def _known(cls, variants: tuple[str, ...]) -> tuple[str, ...]:
        for name in variants:
            if name not in VARIANTS:
                raise ValueError(f"unknown variant {name!r}; expected some of {', '.join(VARIANTS)}")
        if len(set(variants)) != len(variants):
            raise ValueError("variants are repeated")
        return tuple(v for v in VARIANTS if v in variants)  # the paper's order

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: int | tuple[int, ...]) -> int | tuple[int, ...]:
        if isinstance(seeds, tuple) and len(set(seeds)) != len(seeds):
            raise ValueError("seeds are repeated")
        return seeds

    @model_validator(mode="after")
    def _source(self) -> AblationSpec:
        if self.base == "best" and not self.from_study:
            raise ValueError("base: best needs from_study: the search study whose best trial is the base")
        if self.base != "best" and self.from_study:
            raise ValueError("from_study is only used with base: best")
        return self

    @property
    def seed_list(self) -> list[int]:
        """``seeds: N`` means N seeds from 42 (the paper's seed) upwards."""
        if isinstance(self.seeds, int):
            return [DEFAULT_SEEDS[0] + i for i in range(self.seeds)]
        return list(self.seeds)


@dataclass(frozen=True)
class AblationConfig:
    """A validated ablation file: its study part and its ablation part."""

    study: StudyConfig
    spec: AblationSpec
    raw: dict[str, Any]
    """The expanded study part as written (per-task study configs are built from it)."""

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def source(self) -> str:
        return self.study.source

    @property
    def variants(self) -> list[str]:
        return list(self.spec.variants)

    @property
    def seeds(self) -> list[int]:
        return self.spec.seed_list

    @property
    def tasks(self) -> list[str]:
        return list(self.study.data.tasks)

    def describe(self) -> dict[str, Any]:
        """What is stored in each task's study (``ablation`` user attr): how its grid was made."""
        return {
            "base": self.spec.base,
            "variants": self.variants,
            "seeds": self.seeds,
            "from_study": self.spec.from_study,
        }


def parse_ablation_config(raw: Any, source: str = "<ablation>") -> AblationConfig:
    """Validate an already-parsed ablation document; any problem is one ``UserError`` line."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: (top level): expected a mapping of study and ablation keys")
    for key in _SEARCH_KEYS:
        if key in raw:
            raise UserError(
                f"{source}: {key}: not used by an ablation (its grid is variant × seed); "
                "expected base, variants, seeds, from_study and the study keys without it"
            )
    scheduler = raw.get("scheduler")
    name = scheduler.get("name", "fifo") if isinstance(scheduler, dict) else scheduler
    if scheduler is not None and name != "fifo":
        raise UserError(
            f"{source}: scheduler.name: {name!r} would stop variants early; expected fifo "
            "(every variant trains its full budget)"
        )
    part = {k: raw[k] for k in ABLATION_KEYS if k in raw}
    study_part = {k: v for k, v in raw.items() if k not in ABLATION_KEYS}
    try:
        spec = AblationSpec.model_validate(expand_env(part, "", source))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]  # drop pydantic's union-member labels
                         if not str(p)[:1].isupper() and "[" not in str(p) and "-" not in str(p))
        msg = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        raise UserError(f"{source}: {where or '(ablation)'}: {msg}") from None
    study = parse_study_config(study_part, source)
    if study.method != "genft":
        raise UserError(
            f"{source}: method: {study.method!r} has no GenFT components to ablate; expected genft"
        )
    if len(study.objectives) != 1:
        raise UserError(
            f"{source}: objective: an ablation table needs one objective; got {len(study.objectives)}"
        )
    return AblationConfig(study, spec, expand_env(study_part, "", source))


def load_ablation_config(path: str | os.PathLike[str]) -> AblationConfig:
    """Read, expand and validate an ablation file."""
    raw = read_yaml_file(path, "ablation file")
    if raw is None:
        raise UserError(
            f"{path}: (top level): the file is empty; expected a study plus base, variants, seeds"
        )
    return parse_ablation_config(raw, str(path))
