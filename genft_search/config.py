"""The study file: a YAML document validated into :class:`StudyConfig`, or one clear ``UserError``.

``${VAR}`` and ``${VAR:-default}`` in string values expand from the environment before validation,
unknown keys are errors, and every message names the file and the field, so a bad study file ends
before anything touches the study store.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from genft_search.errors import UserError

__all__ = [
    "METHODS",
    "PROTOCOLS",
    "RESERVED_KEYS",
    "SAMPLERS",
    "SCHEDULERS",
    "ParamSpec",
    "StudyConfig",
    "expand_env",
    "load_study_config",
    "parse_duration",
    "parse_study_config",
    "read_yaml_file",
]

#: the methods a study file may name: the method registry's built-ins (``genft_search.method``)
Method = Literal["genft", "lora", "linear", "full"]
#: ``honest`` selects on validation and tests once; ``paper`` is the paper's best-of-test protocol
#: (``docs/method.md``, "Training protocols")
Protocol = Literal["honest", "paper"]
METHODS: tuple[str, ...] = get_args(Method)
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
#: the study file's sampler names -> the class the engine builds (the one list): a name in
#: ``optuna.samplers``, or a dotted path for genft-search's own
SAMPLERS: dict[str, str] = {
    "tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler", "gp": "GPSampler",
    "qmc": "QMCSampler", "grid": "GridSampler", "nsga2": "NSGAIISampler",
    "prior": "genft_search.samplers.PriorSampler",
}
#: the study file's scheduler names -> the class the engine builds: a name in ``ray.tune.schedulers``,
#: or a dotted path for genft-search's own
SCHEDULERS: dict[str, str] = {
    "asha": "ASHAScheduler", "hyperband": "HyperBandScheduler", "median": "MedianStoppingRule",
    "fifo": "FIFOScheduler", "one_epoch_topk": "genft_search.tune.OneEpochTopK",
}
#: keys of the trial config that hyperparameters may not shadow
RESERVED_KEYS = frozenset({"method", "model", "data", "protocol"})
#: the most values a stepped range may have (Optuna's exact decimal arithmetic fails beyond)
MAX_STEPS = 1e9
_CONDITION_OPS = ("eq", "ne", "gt", "ge", "lt", "le", "in")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


#: numbers and flags as YAML wrote them: ``true`` is not 1, ``"3"`` is not 3 (pydantic's lax mode converts)
_Int = Annotated[int, Field(strict=True)]
_Float = Annotated[float, Field(strict=True)]
_Bool = Annotated[bool, Field(strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamSpec(_Strict):
    """One searched hyperparameter: ``{int: [lo, hi]}``, ``{float: [lo, hi]}`` or ``{choice: [...]}``.

    ``step`` and ``log`` refine numeric ranges; ``when`` makes the parameter conditional on earlier
    ones, e.g. ``when: {specific_dim: {gt: 0}}``.
    """

    int_: tuple[_Int, _Int] | None = Field(default=None, alias="int")
    float_: tuple[_Float, _Float] | None = Field(default=None, alias="float")
    choice: tuple[bool | int | float | str | None, ...] | None = None
    step: _Float | None = None
    log: _Bool = False
    when: dict[str, dict[Literal["eq", "ne", "gt", "ge", "lt", "le", "in"], Any]] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpec:
        kinds = [k for k, v in (("int", self.int_), ("float", self.float_), ("choice", self.choice)) if v]
        if len(kinds) != 1:
            raise ValueError("give exactly one of int: [lo, hi], float: [lo, hi] or choice: [values]")
        if self.choice is not None:
            if self.step is not None or self.log:
                raise ValueError("step and log apply to int and float ranges, not to choice")
            if len(set(map(repr, self.choice))) != len(self.choice):
                raise ValueError("choice has repeated values")
            for i, a in enumerate(self.choice):
                for b in self.choice[i + 1:]:
                    if a == b:  # Optuna would store both as the first (1 == True == 1.0)
                        raise ValueError(f"choices {a!r} and {b!r} are equal under ==, so Optuna cannot "
                                         f"tell them apart; expected distinct values")
            return self
        lo, hi = self.int_ or self.float_  # type: ignore[misc]
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise ValueError(f"impossible range [{lo}, {hi}]; expected finite lo <= hi")
        if self.log and lo <= 0:
            raise ValueError(f"log scale needs a range above 0, got [{lo}, {hi}]")
        if self.step is not None:
            if self.step <= 0:
                raise ValueError(f"step must be > 0, got {self.step}")
            if self.log:
                raise ValueError("step and log cannot be combined")
            if self.int_ is not None and self.step != int(self.step):
                raise ValueError(f"an int range needs an integer step, got {self.step}")
            if hi > lo and (hi - lo) / self.step > MAX_STEPS:
                raise ValueError(f"step {self.step} makes more than {MAX_STEPS:.0e} values of [{lo}, {hi}]; "
                                 f"expected a step >= {(hi - lo) / MAX_STEPS:.3g}, or no step")
        return self

    @property
    def kind(self) -> str:
        return "int" if self.int_ is not None else "float" if self.float_ is not None else "choice"


class ModelSpec(BaseModel):
    """The backbone; keys besides ``name`` go to the trainable unchanged (``checkpoint``, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str


class DataSpec(BaseModel):
    """The data: ``kind`` picks the trainable, each of ``tasks`` gets its own study."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str
    root: str | None = None
    tasks: Annotated[list[str], Field(min_length=1)]

    @field_validator("tasks")
    @classmethod
    def _unique(cls, tasks: list[str]) -> list[str]:
        for task in tasks:
            if not re.match(_NAME, task):
                raise ValueError(f"task name {task!r} has characters other than letters, digits, _ . -")
        if len(set(tasks)) != len(tasks):
            raise ValueError("tasks are repeated")
        return tasks


def _one_of(value: str, table: Mapping[str, str]) -> str:
    if value not in table:
        raise ValueError(f"{value!r} is unknown; expected one of {', '.join(table)}")
    return value


class SamplerSpec(BaseModel):
    """An Optuna sampler by short name; other keys are its constructor's keyword arguments."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = "tpe"
    seed: _Int | None = None

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _one_of(value, SAMPLERS)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SchedulerSpec(BaseModel):
    """A Ray Tune trial scheduler by short name; other keys are its constructor's keyword arguments."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = "fifo"

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        return _one_of(value, SCHEDULERS)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Budget(_Strict):
    """``n_trials`` is the study's total of finished trials; ``timeout`` bounds one run (seconds);
    ``device_hours`` bounds the study's device time (GPU-hours, or CPU-hours when trials hold no GPU, over
    every trial). A study stops at whichever comes first."""

    n_trials: Annotated[int, Field(ge=1, strict=True)] = 20
    timeout: float | None = None
    device_hours: Annotated[float, Field(gt=0)] | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


class Resources(_Strict):
    """Per-trial Ray resources; fractions allowed."""

    cpu: Annotated[float, Field(gt=0, strict=True)] = 1.0
    gpu: Annotated[float, Field(ge=0, strict=True)] = 0.0


class Objective(_Strict):
    """What a trial is scored by: a metric the trainable reports, and whether to maximise it.

    ``scope`` picks the value told to Optuna for a finished trial: the ``last`` epoch's (default) or
    the ``best`` epoch's (the paper protocol's "best test accuracy").
    """

    metric: str = "score"
    direction: Literal["maximize", "minimize"] = "maximize"
    scope: Literal["last", "best"] = "last"


class StudyConfig(_Strict):
    """A validated study file (see the README for the meaning of each key)."""

    name: Annotated[str, Field(pattern=_NAME, max_length=200)]
    storage: str | None = None
    method: Method = "genft"
    model: ModelSpec
    data: DataSpec
    protocol: Protocol = "honest"
    space: str | None = None
    params: dict[str, ParamSpec | None] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    budget: Budget = Field(default_factory=Budget)
    resources: Resources = Field(default_factory=Resources)
    warm_start: Literal["paper"] | list[dict[str, Any]] | None = None
    objective: Objective | Annotated[list[Objective], Field(min_length=1)] = Field(default_factory=Objective)
    trainable: str | None = None
    """Optional ``module:function`` of a custom Ray Tune trainable (default: by ``data.kind``)."""

    _source: str = PrivateAttr(default="<study>")

    @model_validator(mode="after")
    def _cross_checks(self) -> StudyConfig:
        for key in (*self.params, *self.fixed):
            if key in RESERVED_KEYS:
                raise ValueError(f"{key!r} is a reserved trial-config key; pick another parameter name")
        both = sorted(set(self.fixed) & {k for k, v in self.params.items() if v is not None})
        if both:
            raise ValueError(f"{', '.join(both)} in both params and fixed; keep each name in one of them")
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError("objective names a metric twice")
        if self.trainable is not None and not re.match(r"^[\w.]+:\w+$", self.trainable):
            raise ValueError(f"trainable {self.trainable!r} is not of the form module.path:function")
        return self

    @property
    def source(self) -> str:
        """The file this config was read from (for messages)."""
        return self._source

    @property
    def objectives(self) -> list[Objective]:
        return list(self.objective) if isinstance(self.objective, list) else [self.objective]

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        return [o.direction for o in self.objectives]

    def study_name(self, task: str) -> str:
        """The Optuna study holding ``task``: ``<name>/<task>``."""
        return f"{self.name}/{task}"

    def with_source(self, source: str) -> StudyConfig:
        self._source = source
        return self


# ---------------------------------------------------------------------------------------------------
# loading


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"12h"``, ``"1d"`` or ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError(f"duration {value!r} is invalid; expected seconds or e.g. 30m, 12h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text)
        if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smhd]?)", "", text).strip():
            raise ValueError(f"duration {value!r} is invalid; expected seconds or e.g. 30m, 12h, 1h30m")
        unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
        seconds = sum(float(n) * unit[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"duration {value!r} is invalid; expected a positive time")
    return seconds


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, where: str, source: str) -> Any:
    """``value`` with ``${VAR}`` / ``${VAR:-default}`` expanded in every string (study and ablation files).

    ``where`` is the field's dotted path and ``source`` the file, for the one-line ``UserError``.
    """
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}" if where else str(k), source) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        got = os.environ.get(name)
        if got is None or (got == "" and default is not None):
            if default is None:
                raise UserError(
                    f"{source}: {where}: environment variable {name} is not set; "
                    f"expected it set, or a default as ${{{name}:-value}}"
                )
            return default
        return got

    expanded = _VAR.sub(one, value)
    if "${" in expanded and expanded == value:
        raise UserError(f"{source}: {where}: malformed ${{...}} in {value!r}; expected ${{VAR}} or "
                        f"${{VAR:-default}}")
    if expanded != value and _VAR.fullmatch(value):
        # a whole-value ${VAR} reads as YAML would (numbers, booleans), so n_trials: ${N} works
        try:
            return yaml.safe_load(expanded) if expanded.strip() else expanded
        except yaml.YAMLError:
            return expanded
    return expanded


#: the most YAML nodes a file may expand to (aliases counted at every use): a study file has hundreds,
#: an alias bomb ("billion laughs") billions, which every later walk over the document would visit
MAX_YAML_NODES = 100_000
#: the most aliases (``*name``) a file may hold
MAX_YAML_ALIASES = 1_000
#: the deepest nesting of lists and mappings a file may have
MAX_YAML_DEPTH = 100
#: the largest study or ablation file read (characters)
MAX_YAML_BYTES = 5_000_000


class _YamlTooLarge(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses repeated keys (PyYAML silently keeps the last one) and documents that
    expand to more than :data:`MAX_YAML_NODES` nodes or use more than :data:`MAX_YAML_ALIASES` aliases,
    so reading any file takes milliseconds."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _YamlTooLarge(f"more than {MAX_YAML_ALIASES} aliases; expected a plain study file",
                                    self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _YamlTooLarge(f"nested more than {MAX_YAML_DEPTH} levels deep; expected a plain "
                                    f"study file", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        sizes: dict[int, int] = {}

        def size(n: yaml.Node) -> int:
            key = id(n)
            if key not in sizes:
                sizes[key] = 0  # a recursive alias counts once per level, never forever
                children: list[yaml.Node] = []
                if isinstance(n, yaml.SequenceNode):
                    children = list(n.value)
                elif isinstance(n, yaml.MappingNode):
                    children = [c for pair in n.value for c in pair]
                total = 1
                for child in children:
                    total += size(child)
                    if total > MAX_YAML_NODES:
                        break
                sizes[key] = total
            return sizes[key]

        if node is not None and size(node) > MAX_YAML_NODES:
            raise _YamlTooLarge(f"the document expands to more than {MAX_YAML_NODES} nodes through "
                                f"aliases; expected a plain study file", node.start_mark)
        return node


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is repeated", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("int_", "float_"):
            out += "." + part.rstrip("_")
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _pydantic_message(error: ValidationError, source: str) -> str:
    errors = error.errors(include_url=False)
    # a misspelt key also makes the right one "missing": name the misspelling first
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and "[" in p and "]" in p))
    # pydantic names union members in the location ("ParamSpec", "list[...]", "function-after[...]")
    loc = tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "-" in p or "[" in p)))
    kind = first["type"]
    msg = str(first["msg"]).removeprefix("Value error, ")
    got = first.get("input")
    if kind == "extra_forbidden":
        msg = "unknown key; check the spelling (see the README for the study file keys)"
    elif kind == "missing":
        msg = "required key is missing"
    elif got is not None and not isinstance(got, (dict, list)) and "got" not in msg:
        msg += f" (got {got!r})"
    return f"{source}: {_field(loc)}: {msg}"


_PLACEHOLDER = "__genft_env_{}__"


def _protect(text: str) -> tuple[str, dict[str, str]]:
    """Replace each ``${...}`` by a plain token so YAML flow mappings (``{a: ${X}}``) still parse."""
    found: dict[str, str] = {}

    def sub(match: re.Match[str]) -> str:
        token = _PLACEHOLDER.format(len(found))
        found[token] = match.group(0)
        return token

    return re.sub(r"\$\{[^}\n]*\}", sub, text), found


def _restore(value: Any, found: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {_restore(k, found): _restore(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, found) for v in value]
    if isinstance(value, str) and "__genft_env_" in value:
        for token, original in found.items():
            value = value.replace(token, original)
    return value


def parse_study_config(raw: Any, source: str = "<study>") -> StudyConfig:
    """Validate an already-parsed study document (env expansion included)."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: (top level): expected a mapping of study keys, got {type(raw).__name__}")
    expanded = expand_env(raw, "", source)
    try:
        return StudyConfig.model_validate(expanded).with_source(source)
    except ValidationError as exc:
        raise UserError(_pydantic_message(exc, source)) from None


def read_yaml_file(path: str | os.PathLike[str], what: str) -> Any:
    """Parse a YAML file (repeated keys refused, ``${...}`` kept as text for :func:`expand_env`).

    Missing or unreadable files and syntax errors are one ``UserError`` line naming the file;
    ``what`` names the kind of file in the message ("study file", "ablation file").
    """
    source = str(path)
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{source}: (file): {what} not found; expected a readable YAML file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{source}: (file): cannot read it ({exc.__class__.__name__}); expected "
                        f"UTF-8 YAML") from None
    if len(text) > MAX_YAML_BYTES:
        raise UserError(f"{source}: (file): {len(text)} characters; expected a {what} under "
                        f"{MAX_YAML_BYTES // 1_000_000} MB")
    text, found = _protect(text)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(syntax)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "" if isinstance(exc, _YamlTooLarge) else "YAML syntax error: "
        raise UserError(f"{source}: {where}: {kind}{problem}") from None
    except RecursionError:
        raise UserError(f"{source}: (top level): the YAML nests too deeply; expected a plain study "
                        f"file") from None
    return _restore(raw, found)


def load_study_config(path: str | os.PathLike[str]) -> StudyConfig:
    """Read, expand and validate a study file; any problem is one ``UserError`` line."""
    raw = read_yaml_file(path, "study file")
    if raw is None:
        raise UserError(f"{path}: (top level): the file is empty; expected a study (name, model, "
                        f"data, ...)")
    return parse_study_config(raw, str(path))
