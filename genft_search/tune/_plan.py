"""Planning a study, with no side effects: everything that can be wrong with a study file is found here.

A :class:`StudyPlan` is what the run needs: the search space and its fingerprint, the trainable, the
per-task base trial configs, the total ``n_trials`` and the budget in epochs. The sampler and scheduler
factories build from the schema's own name tables (``genft_search.config.SAMPLERS`` / ``SCHEDULERS``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from genft_search.config import SAMPLERS, SCHEDULERS, StudyConfig
from genft_search.errors import UserError
from genft_search.space import SearchSpace, build_space

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

__all__ = ["BUDGET_KEY", "StudyPlan", "make_sampler", "make_scheduler", "plan_study"]

#: the result key that counts a trial's budget (the trainables' 1-based epoch)
BUDGET_KEY = "epoch"


@dataclass
class StudyPlan:
    """A validated study, ready to run: its space, trainable and per-task base trial configs."""

    config: StudyConfig
    space: SearchSpace
    fingerprint: str
    trainable: Callable[[dict[str, Any]], None]
    base_configs: dict[str, dict[str, Any]]
    n_trials: int
    max_budget: int | None
    notes: list[str] = field(default_factory=list)
    #: extra study attributes written when the study is created (an ablation's description)
    ablation: dict[str, Any] | None = None

    def sampler(self, task: str | None = None, seed: int | None = None) -> optuna.samplers.BaseSampler:
        """The sampler of ``task``'s study (the first task's when None; the prior sampler's prior is
        per task); ``seed`` replaces the file's seed (a run's derived seed), if it has one."""
        return make_sampler(self.config, self.space, task, seed=seed)

    def scheduler(self) -> TrialScheduler:
        return make_scheduler(self.config, self.max_budget)


def _base_config(config: StudyConfig, task: str) -> dict[str, Any]:
    data = config.data.model_dump(exclude_none=True)
    data.pop("tasks", None)
    data["task"] = task
    base: dict[str, Any] = {
        "method": config.method,
        "model": config.model.model_dump(exclude_none=True),
        "data": data,
        "protocol": config.protocol,
        "seed": 42,
    }
    base.update(config.fixed)
    return base


def _load_trainable(config: StudyConfig) -> Callable[[dict[str, Any]], None]:
    if config.trainable is None:
        from trainables import registry

        with prefixed(config.source):
            return registry.get_trainable(config.data.kind)
    module_name, _, attr = config.trainable.partition(":")
    try:
        module = importlib.import_module(module_name)
        trainable: Callable[[dict[str, Any]], None] = getattr(module, attr)
        return trainable
    except (ImportError, AttributeError) as exc:
        raise UserError(
            f"{config.source}: trainable: cannot import {config.trainable!r} ({exc.__class__.__name__}); "
            "expected module.path:function importable here"
        ) from None


@contextlib.contextmanager
def prefixed(source: str) -> Iterator[None]:
    """Name the study file in ``UserError`` messages raised by trainables (they do not know it)."""
    try:
        yield
    except UserError as exc:
        message = str(exc)
        if message.startswith(source):
            raise
        raise UserError(f"{source}: {message}") from None


#: annotation words -> the YAML values that fit them
_YAML_TYPES: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "None": lambda v: v is None,
    "dict": lambda v: isinstance(v, dict),
    "Mapping": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "Sequence": lambda v: isinstance(v, list),
}


def _annotation_parts(annotation: Any) -> list[str]:
    """``int | None`` / ``typing.Optional[int]`` / ``<class 'int'>`` -> ``["int", "None"]`` (outer names)."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    text = text.replace("typing.", "").replace("NoneType", "None")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional["):-1] + " | None"
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip().split("[", 1)[0] for part in parts if part.strip()]


def _check_kwargs(target: Any, kwargs: Mapping[str, Any], where: str, reserved: set[str]) -> None:
    """Unknown options, and options whose value is not of the constructor's annotated type."""
    params = {n: p for n, p in inspect.signature(target).parameters.items()
              if n not in ("self", "kwargs", *reserved)}
    for key, value in kwargs.items():
        if key not in params:
            raise UserError(f"{where}: unknown option {key!r}; expected one of {', '.join(params)}")
        param = params[key]
        if param.annotation is inspect.Parameter.empty:
            continue
        parts = _annotation_parts(param.annotation)
        if not any(part in _YAML_TYPES for part in parts if part != "None"):
            raise UserError(f"{where}: {key}: takes a {param.annotation}, which a study file cannot "
                            f"give; expected the option left out")
        if not any(_YAML_TYPES[part](value) for part in parts if part in _YAML_TYPES):
            raise UserError(f"{where}: {key}: {value!r} is a {type(value).__name__}; expected "
                            f"{' or '.join(parts)}")


def _dry_ask(config: StudyConfig, space: SearchSpace, sampler: optuna.samplers.BaseSampler) -> None:
    """One ``ask`` on an in-memory study, so a sampler option of the wrong type fails here, not in a run
    after a trial is already RUNNING in the store."""
    where = f"{config.source}: sampler"
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # no "study created in memory" or fallback lines
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=sampler,
                                        directions=config.directions)
            space.sample(study.ask())
    except UserError:
        raise
    except Exception as exc:  # whatever the sampler raises, it is this file's options
        raise UserError(f"{where}: {config.sampler.name}: {type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:300]}; expected valid options of "
                        f"optuna.samplers.{SAMPLERS[config.sampler.name]}") from None
    finally:
        optuna.logging.set_verbosity(level)


def _resolve(path: str, default: Any) -> Any:
    """A class of the name tables: a name in ``default`` (a module) or a dotted path."""
    if "." not in path:
        return getattr(default, path)
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


#: the samplers the prior-guided sampler may draw its base share from
_PRIOR_BASES = ("tpe", "random")


def _prior_point(config: StudyConfig, space: SearchSpace, task: str, where: str) -> dict[str, Any]:
    """The prior's centre: the first ``warm_start`` row, else the paper's setting for ``task``."""
    from genft_search.paper import paper_setting

    if isinstance(config.warm_start, list):
        row = next((r for r in config.warm_start if r), None)
        origin = "the first warm_start row"
    else:
        row = paper_setting(config.data.kind, task)
        origin = f"the paper's setting for {config.data.kind} task {task!r}"
        if row is None:
            raise UserError(f"{where}: prior: the paper reports no setting for {config.data.kind} task "
                            f"{task!r}; expected warm_start rows giving the prior point, or a task of the "
                            f"paper")
    point = {k: v for k, v in (row or {}).items() if k in space}
    if not point:
        raise UserError(f"{where}: prior: {origin} sets none of the searched parameters; expected values "
                        f"for some of {', '.join(space.names()) or '(none)'}")
    return point


def _prior_sampler(config: StudyConfig, space: SearchSpace, task: str, where: str,
                   seed: int | None = None) -> optuna.samplers.BaseSampler:
    from genft_search.samplers import CONFIDENCE, PriorSampler

    kwargs = config.sampler.kwargs
    for key in kwargs:
        if key not in ("base", "confidence"):
            raise UserError(f"{where}: unknown option {key!r}; expected one of base, confidence, seed")
    base = kwargs.get("base", "tpe")
    if base not in _PRIOR_BASES:
        raise UserError(f"{where}: base: {base!r} is not a base for the prior sampler; expected one of "
                        f"{', '.join(_PRIOR_BASES)}")
    confidence = kwargs.get("confidence", "medium")
    if confidence not in CONFIDENCE:
        raise UserError(f"{where}: confidence: {confidence!r} is unknown; expected one of "
                        f"{', '.join(CONFIDENCE)}")
    if config.sampler.seed is None or seed is None:
        seed = config.sampler.seed
    base_sampler = getattr(optuna.samplers, SAMPLERS[base])(seed=seed)
    return PriorSampler(_prior_point(config, space, task, where), base_sampler, confidence=confidence,
                        seed=seed)


def make_sampler(config: StudyConfig, space: SearchSpace, task: str | None = None,
                 seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's Optuna sampler (``task``: whose prior the prior sampler centres on; the first task's
    when None); unknown or invalid options are a ``UserError``. ``seed`` replaces the file's
    ``sampler.seed`` when the file sets one."""
    spec = config.sampler
    where = f"{config.source}: sampler"
    if spec.name == "prior":
        return _prior_sampler(config, space, task or config.data.tasks[0], where, seed)
    cls = _resolve(SAMPLERS[spec.name], optuna.samplers)
    kwargs = dict(spec.kwargs)
    reserved = {"search_space"} if spec.name == "grid" else set()
    _check_kwargs(cls.__init__, kwargs, where, reserved)
    if spec.seed is not None:
        kwargs["seed"] = spec.seed if seed is None else seed
    if spec.name == "grid":
        kwargs["search_space"] = space.grid(config.source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler: optuna.samplers.BaseSampler = cls(**kwargs)
            return sampler
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: {spec.name}: {' '.join(str(exc).split())}") from None


def make_scheduler(config: StudyConfig, max_budget: int | None) -> TrialScheduler:
    """The Ray Tune scheduler, on the ``epoch`` the trainable reports (``max_t`` = epochs by default)."""
    from ray.tune import schedulers

    spec = config.scheduler
    where = f"{config.source}: scheduler"
    kwargs = spec.kwargs
    cls = _resolve(SCHEDULERS[spec.name], schedulers)
    _check_kwargs(cls.__init__, kwargs, where, {"time_attr", "metric", "mode"})
    if spec.name in ("asha", "hyperband"):
        if "max_t" not in kwargs:
            if max_budget is None:
                raise UserError(
                    f"{where}: {spec.name} needs max_t; expected scheduler.max_t or fixed.epochs"
                )
            kwargs["max_t"] = max_budget
        if spec.name == "asha" and kwargs.get("grace_period", 1) > kwargs["max_t"]:
            raise UserError(f"{where}: grace_period {kwargs['grace_period']} exceeds max_t "
                            f"{kwargs['max_t']}; "
                            "expected grace_period <= max_t (epochs)")
    if spec.name == "one_epoch_topk":
        if "k" not in kwargs:
            raise UserError(f"{where}: one_epoch_topk needs k; expected scheduler.k, the configurations "
                            f"trained to the end")
        if max_budget is None:
            raise UserError(f"{where}: one_epoch_topk needs the epochs; expected fixed.epochs")
        if isinstance(kwargs.get("first", 1), int) and kwargs.get("first", 1) > max_budget:
            raise UserError(f"{where}: first {kwargs['first']} exceeds the {max_budget} epochs; expected "
                            f"first <= fixed.epochs")
    if spec.name != "fifo":
        kwargs["time_attr"] = BUDGET_KEY
    if spec.name == "asha":  # Ray's ASHA and its options, with rungs holding every runner's trials
        from genft_search.tune._asha import StoreASHA

        cls = StoreASHA
    try:
        scheduler: TrialScheduler = cls(**kwargs)
        return scheduler
    except (TypeError, ValueError, AssertionError) as exc:
        raise UserError(f"{where}: {spec.name}: {' '.join(str(exc).split()) or 'invalid options'}") from None


def _max_budget(config: StudyConfig) -> int | None:
    epochs = config.fixed.get("epochs")
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0:
        return epochs
    max_t = config.scheduler.kwargs.get("max_t")
    return int(max_t) if isinstance(max_t, (int, float)) else None


def _random_search_note(config: StudyConfig, n_trials: int) -> list[str]:
    """A model-based sampler draws its first ``n_startup_trials`` points at random; a study with no more
    trials than that is random search, whatever the file says."""
    cls = _resolve(SAMPLERS[config.sampler.name], optuna.samplers)
    parameter = inspect.signature(cls.__init__).parameters.get("n_startup_trials")
    if parameter is None:
        return []
    startup = config.sampler.kwargs.get("n_startup_trials", parameter.default)
    if not isinstance(startup, int) or n_trials > startup:
        return []
    return [f"{config.source}: sampler: {config.sampler.name} draws its first {startup} trials at random "
            f"(n_startup_trials) and n_trials is {n_trials}: this study is random search; expected "
            f"sampler.n_startup_trials below n_trials for {config.sampler.name} to model the results"]


def plan_study(config: StudyConfig, *, n_trials: int | None = None, check_data: bool = True,
               trainable: Callable[[dict[str, Any]], None] | None = None) -> StudyPlan:
    """Validate a study without side effects: space, sampler, scheduler, trainable and data.

    Args:
        config: the parsed study file.
        n_trials: overrides ``budget.n_trials`` (the study's total of finished trials).
        check_data: look at the data and model on disk (off for custom trainables and benchmarks).
        trainable: a function that replaces the one ``data.kind`` selects.

    Returns:
        The plan :func:`genft_search.tune.run_plan` runs.

    Raises:
        UserError: one line naming the file and field, for anything a run would trip over.
    """
    space = build_space(config)
    if n_trials is not None and n_trials < 1:
        raise UserError(f"--n-trials: {n_trials} is not a number of trials; expected an integer >= 1")
    total = n_trials if n_trials is not None else config.budget.n_trials
    notes: list[str] = []
    if config.sampler.name == "grid":
        size = space.grid_size(config.source)
        if total > size:
            notes.append(f"grid of {size} points: n_trials lowered from {total} to {size}")
            total = size
    if len(config.objectives) > 1 and config.sampler.name == "cmaes":
        raise UserError(f"{config.source}: sampler: cmaes handles one objective; expected tpe, "
                        f"nsga2, gp or random")
    if len(config.objectives) > 1 and config.scheduler.name != "fifo":
        raise UserError(f"{config.source}: scheduler: {config.scheduler.name} stops trials on one metric, "
                        f"but the file has {len(config.objectives)} objectives; expected scheduler fifo "
                        f"with several objectives")
    _check_epochs(config)
    notes.extend(_random_search_note(config, total))
    max_budget = _max_budget(config)
    if config.sampler.name == "prior" and len(config.objectives) > 1:
        raise UserError(f"{config.source}: sampler: prior handles one objective; expected tpe, nsga2, gp "
                        f"or random")
    for task in config.data.tasks if config.sampler.name == "prior" else config.data.tasks[:1]:
        _dry_ask(config, space, make_sampler(config, space, task))
    make_scheduler(config, max_budget)
    _check_warm_start(config, space)
    trainable = trainable or _load_trainable(config)
    if config.trainable is None:  # the built-in trainables read the method's keys from `fixed`
        from genft_search.method import check_method_config

        try:
            check_method_config(config.method, config.fixed)
        except ValueError as exc:
            raise UserError(f"{config.source}: fixed: {exc}") from None
        _check_space_values(config, space, check_method_config)
    if check_data and config.trainable is None:
        from trainables import registry

        with prefixed(config.source):
            registry.check_study(config.data.kind, config.data.model_dump(exclude_none=True),
                                 config.model.model_dump(exclude_none=True), config.data.tasks)
    bases = {task: _base_config(config, task) for task in config.data.tasks}
    fingerprint = space.fingerprint(config.method)
    return StudyPlan(config, space, fingerprint, trainable, bases, total, max_budget, notes)


def _check_epochs(config: StudyConfig) -> None:
    """``epochs`` (fixed or searched) is a whole number of epochs >= 1: 0 would run trials that train
    nothing and still use up the budget."""
    where = f"{config.source}: fixed.epochs"
    if "epochs" in config.fixed:
        epochs = config.fixed["epochs"]
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise UserError(f"{where}: {epochs!r} is not a number of epochs; expected an integer >= 1")
    spec = config.params.get("epochs")
    if spec is not None:
        values = list(spec.choice) if spec.choice is not None else list(spec.int_ or spec.float_ or ())
        if spec.float_ is not None or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                          for v in values):
            raise UserError(f"{config.source}: params.epochs: {values!r} are not all numbers of epochs; "
                            f"expected integers >= 1")


def _allowed(space: SearchSpace, name: str) -> str:
    dist = space.params[name].distribution
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return "one of " + ", ".join(map(repr, dist.choices))
    assert isinstance(dist, (optuna.distributions.IntDistribution, optuna.distributions.FloatDistribution))
    step = f" in steps of {dist.step}" if dist.step not in (None, 1) else ""
    kind = "an integer" if isinstance(dist, optuna.distributions.IntDistribution) else "a number"
    return f"{kind} in [{dist.low}, {dist.high}]{step}"


def _check_warm_start(config: StudyConfig, space: SearchSpace) -> None:
    """Each row of a ``warm_start`` list names searched parameters with values inside the space; the
    enqueueing keeps only those, so anything else would be dropped without a word."""
    if not isinstance(config.warm_start, list):
        return  # ``paper`` enqueues what of the paper's setting the space holds, by design
    for i, row in enumerate(config.warm_start):
        where = f"{config.source}: warm_start[{i}]"
        if not isinstance(row, dict):
            raise UserError(f"{where}: {row!r} is not a mapping; expected {{parameter: value, ...}}")
        for key, value in row.items():
            if key not in space:
                raise UserError(f"{where}.{key}: not a searched parameter; expected one of "
                                f"{', '.join(space.names()) or '(none)'}")
            if not space.contains(key, value):
                raise UserError(f"{where}.{key}: {value!r} is outside the search space; expected "
                                f"{_allowed(space, key)}")


def _check_space_values(config: StudyConfig, space: SearchSpace,
                        check: Callable[[str, Mapping[str, Any]], None]) -> None:
    """Every choice (and both ends of every range) of the searched parameters is a setting the method
    accepts, so no trial fails on a value the file offered (``sigma1: {choice: [relu, swishy]}``)."""
    for name, param in space.params.items():
        dist = param.distribution
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            values = list(dist.choices)
        else:
            assert isinstance(dist, (optuna.distributions.IntDistribution,
                                     optuna.distributions.FloatDistribution))
            values = [dist.low, dist.high]
        for value in values:
            try:
                check(config.method, {**config.fixed, name: value})
            except ValueError as exc:
                raise UserError(f"{config.source}: params.{name}: {value!r} is not a valid {config.method} "
                                f"setting ({exc})") from None
