"""The vision trainable: a timm model + a PEFT method on a VTAB-1k or FGVC task, for Ray Tune.

Trial config keys (flat, see docs/internals.md):

- ``method``: registry name (``genft``, ``lora``, ``linear``, ``full``); its hyperparameters are
  flat keys of the config (GenFT: ``shared_dim``, ``specific_dim``, ``sigma1``, ...).
- ``model``: see :mod:`trainables.models` (``{name: vit_base_patch16_224, checkpoint: /x/ViT-B_16.npz}``;
  offline: ``{name: builtin, checkpoint: builtin}``).
- ``data``: ``{kind: vtab1k | fgvc, root: <folder> | builtin, task: <name>}``; optional ``num_workers``,
  ``cache`` (keep decoded images of deterministic splits in memory, default true).
  ``root: builtin`` is the procedural dSprites (``task: dsprites_loc`` or ``dsprites_ori``).
- ``protocol``: ``honest`` (train800 → val200; FGVC train → val; metrics ``val_*``) or ``paper``
  (VTAB train800val200 → test, FGVC train → test, every ``eval_every`` = 10 epochs; ``score`` is
  the best test top-1 so far, as in the paper's code; metrics ``test_*``).
- training: ``epochs`` (100), ``batch_size`` (64), ``lr`` (1e-3), ``weight_decay`` (1e-4),
  ``label_smoothing`` (0), ``warmup_epochs`` (10), ``warmup_lr`` (1e-6), ``min_lr`` (1e-5),
  ``cycle_decay`` (0.1), ``eval_every`` (1 honest, 10 paper), ``seed`` (42), ``train_limit``
  (use only the first N training images; for smoke runs).

In a study file (the engine turns ``tasks`` into one ``task`` per trial), offline::

    model: {name: builtin, checkpoint: builtin}
    data: {kind: vtab1k, root: builtin, tasks: [dsprites_loc, dsprites_ori]}

Each evaluated epoch reports ``epoch``, ``score``, ``<split>_top1``, ``<split>_loss``, ``train_loss``,
``lr``, ``trainable_params`` (the method's own parameters, head excluded, as the paper counts) and
``head_params``, with a checkpoint from which a retried trial resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from genft_search.config import PROTOCOLS
from genft_search.errors import UserError
from trainables import common
from trainables.data import fgvc, vtab1k
from trainables.data.transforms import Normalize, build_transform
from trainables.loop import TrainingRun
from trainables.models import build_model
from trainables.models import check_model as check_model  # the registry's per-kind model check

DATA_KINDS = ("vtab1k", "fgvc")
_CACHE_BYTES = 2 << 30  # keep a decoded split in memory up to this size


@dataclass(frozen=True)
class Settings:
    """Training hyperparameters of one trial (defaults: the paper's VTAB-1k values)."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    warmup_epochs: int = 10
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    cycle_decay: float = 0.1
    eval_every: int = 1
    seed: int = 42
    train_limit: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        paper = config.get("protocol", "honest") == "paper"
        values: dict[str, Any] = {"eval_every": 10 if paper else 1}
        for field in cls.__dataclass_fields__:
            if config.get(field) is not None:
                values[field] = config[field]
        try:
            settings = cls(**{k: type(getattr(cls, k))(v) for k, v in values.items()})
        except (TypeError, ValueError) as error:
            raise UserError(f"trial config: invalid training setting ({error})") from None
        if settings.epochs < 1 or settings.batch_size < 1 or settings.eval_every < 1:
            raise UserError("trial config: epochs, batch_size and eval_every must be >= 1")
        return settings


@dataclass(frozen=True)
class _Plan:
    """Which splits a run trains and evaluates on, and the prefix of the reported metric names."""

    train: tuple[str, ...]
    evaluate: str
    prefix: str


def _plan(kind: str, protocol: str, final: bool) -> _Plan:
    if protocol not in PROTOCOLS:
        raise UserError(f"protocol: {protocol!r} is unknown; expected one of {', '.join(PROTOCOLS)}")
    if kind == "vtab1k":
        if final or protocol == "paper":
            return _Plan(("train800val200",), "test", "test")
        return _Plan(("train800",), "val200", "val")
    if final:
        return _Plan(("train", "val"), "test", "test")
    if protocol == "paper":
        return _Plan(("train",), "test", "test")
    return _Plan(("train",), "val", "val")


def _data_kind(data_cfg: Mapping[str, Any]) -> str:
    kind = str(data_cfg.get("kind"))
    if kind not in DATA_KINDS:
        raise UserError(f"data: kind: {kind!r} is not a vision data kind; "
                        f"expected one of {', '.join(DATA_KINDS)}")
    return kind


def resolve_root(data_cfg: Mapping[str, Any], task: str) -> Path:
    """The data root, preparing the built-in dSprites when ``root: builtin``."""
    root = data_cfg.get("root")
    if root in (None, ""):
        raise UserError("data: root: missing; expected the dataset folder or 'builtin'")
    if str(root) == "builtin":
        if _data_kind(data_cfg) != "vtab1k":
            raise UserError("data: root: builtin is only for kind: vtab1k; expected a folder for fgvc")
        from trainables.assets import builtin_vtab_root, ensure_dsprites

        ensure_dsprites(task)
        return builtin_vtab_root()
    return Path(str(root)).expanduser()


def check_data(data_cfg: Mapping[str, Any], task: str) -> None:
    """Raise ``UserError`` unless ``task`` can be loaded (folders, list files, labels, first images)."""
    kind = _data_kind(data_cfg)
    root = resolve_root(data_cfg, task)
    if kind == "vtab1k":
        vtab1k.check_task(root, task)
    else:
        fgvc.check_task(root, task)


def _dataset(kind: str, root: Path, task: str, split: str, transform: Callable) -> Dataset:
    if kind == "vtab1k":
        return vtab1k.VTabDataset(root, task, split, transform)
    return fgvc.FGVCDataset(root, task, split, transform)


def _num_classes(kind: str, root: Path, task: str) -> int:
    return vtab1k.num_classes(root, task) if kind == "vtab1k" else fgvc.num_classes(root, task)


def _materialize(dataset: Dataset, image_size: int, workers: int) -> Dataset:
    """Decode a deterministic split once into uint8 tensors when it fits in memory."""
    if len(dataset) * 3 * image_size * image_size > _CACHE_BYTES:  # type: ignore[arg-type]
        return dataset
    loader = DataLoader(dataset, batch_size=256, shuffle=False, num_workers=workers)
    images, labels = zip(*[(x, y) for x, y in loader])
    return TensorDataset(torch.cat(images), torch.cat(labels))


class _Run(TrainingRun):
    """Everything one training run needs, built from a trial config."""

    def __init__(self, config: Mapping[str, Any], final: bool = False) -> None:
        from genft_search.method import attach_method

        self.config = dict(config)
        self.settings = Settings.from_config(config)
        data_cfg = dict(config.get("data") or {})
        self.kind = _data_kind(data_cfg)
        self.task = common.trial_task(config)
        self.protocol = str(config.get("protocol", "honest"))
        self.best_of_test = self.protocol == "paper" and not final  # the paper's reporting, labelled
        self.plan = _plan(self.kind, self.protocol, final)
        self.prefix, self.metric_name = self.plan.prefix, "top1"
        root = resolve_root(data_cfg, self.task)
        common.seed_everything(self.settings.seed)
        self.device, self.amp = common.device_and_amp()
        num_classes = _num_classes(self.kind, root, self.task)
        self.model, self.info = build_model(config.get("model") or {}, num_classes)
        self.adapter = attach_method(str(config.get("method", "genft")), self.model, config)
        channels_last = self.device.type == "cuda"
        self.model.to(self.device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.normalize = Normalize(self.info.mean, self.info.std, channels_last).to(self.device)
        self.params = [p for p in self.adapter.trainable_parameters() if p.requires_grad]
        self._build_loaders(data_cfg, root)
        self._build_optimizer()

    def _build_loaders(self, data_cfg: Mapping[str, Any], root: Path) -> None:
        size = self.info.image_size
        cuda = self.device.type == "cuda"
        workers = int(data_cfg.get("num_workers", 8 if cuda else 0))
        cache = bool(data_cfg.get("cache", True))
        augment = self.kind == "fgvc"
        train_sets = [_dataset(self.kind, root, self.task, split, build_transform(self.kind, size, True))
                      for split in self.plan.train]
        train_set: Dataset = train_sets[0] if len(train_sets) == 1 else ConcatDataset(train_sets)
        if self.settings.train_limit > 0:
            limit = min(self.settings.train_limit, len(train_set))  # type: ignore[arg-type]
            train_set = Subset(train_set, range(limit))
        if cache and not augment:
            train_set = _materialize(train_set, size, workers)
        eval_transform = build_transform(self.kind, size, False)
        eval_set = _dataset(self.kind, root, self.task, self.plan.evaluate, eval_transform)
        if cache:
            eval_set = _materialize(eval_set, size, workers)
        self.shuffle = torch.Generator().manual_seed(self.settings.seed)
        self.train_loader = DataLoader(train_set, batch_size=self.settings.batch_size, shuffle=True,
                                       generator=self.shuffle, num_workers=workers, pin_memory=cuda,
                                       persistent_workers=workers > 0, drop_last=False)
        self.eval_loader = DataLoader(eval_set, batch_size=max(self.settings.batch_size, 128), shuffle=False,
                                      num_workers=workers, pin_memory=cuda, persistent_workers=workers > 0)

    def _build_optimizer(self) -> None:
        from timm.scheduler import CosineLRScheduler

        s = self.settings
        self.optimizer = torch.optim.AdamW(self.params, lr=s.lr, weight_decay=s.weight_decay)
        self.scheduler = CosineLRScheduler(
            self.optimizer, t_initial=s.epochs, lr_min=s.min_lr, warmup_t=min(s.warmup_epochs, s.epochs - 1),
            warmup_lr_init=s.warmup_lr, cycle_decay=s.cycle_decay, t_in_epochs=True,
        )
        self.criterion = nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
        self.setup_amp()

    def start_epoch(self, epoch: int) -> None:
        self.scheduler.step(epoch - 1)  # timm's per-epoch cosine schedule

    def batch_loss(self, batch: Any) -> torch.Tensor:
        images, labels = batch
        images = self.normalize(images.to(self.device, non_blocking=True))
        labels = labels.to(self.device, non_blocking=True)
        with self.autocast():
            return self.criterion(self.model(images), labels)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """(top-1 in %, mean cross-entropy) on the evaluation split."""
        self.model.eval()
        correct, loss_sum, count = 0, 0.0, 0
        for images, labels in self.eval_loader:
            images = self.normalize(images.to(self.device, non_blocking=True))
            labels = labels.to(self.device, non_blocking=True)
            with self.autocast():
                logits = self.model(images)
            loss_sum += nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == labels).sum())
            count += len(labels)
        return 100.0 * correct / max(count, 1), loss_sum / max(count, 1)


def train(config: dict[str, Any]) -> None:
    """Ray Tune function trainable; in plain Python its reports go to ``common.LOCAL_SESSION``."""
    run = _Run(config)
    run.fit(common.report_epoch, common.load_resume_state())


def evaluate_test(config: dict[str, Any]) -> dict[str, Any]:
    """Honest final evaluation: retrain on train+val with the chosen setting, test once at the end."""
    run = _Run(config, final=True)
    metrics = run.fit(report=None)
    return {"task": run.task, "protocol": "honest (retrained on train+val, tested once)", **metrics}
