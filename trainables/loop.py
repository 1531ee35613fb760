"""The epoch loop every trainable runs, with the checkpoint state a retried trial resumes from.

A trainable's run builds its model, adapter, loaders, optimizer and scheduler, then subclasses
:class:`TrainingRun` for what is the same everywhere: AMP set-up, the per-epoch loop with its
reports, and saving/restoring everything a retried trial needs to continue exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from trainables import common

__all__ = ["TrainingRun"]

Report = Callable[[dict[str, Any], dict[str, Any]], None]


class TrainingRun:
    """Base of the vision and text runs. Subclasses set the attributes below and the hooks.

    Attributes: ``settings`` (with ``epochs`` and ``eval_every``), ``model``, ``adapter``,
    ``train_loader`` (yielding ``(inputs, labels)``), ``params`` (what the optimizer trains),
    ``optimizer``, ``scheduler``, ``shuffle`` (the train loader's generator), ``device``, ``amp``,
    ``prefix`` (``val`` or ``test``: the split the metrics are named after), ``metric_name``
    (``top1``, ``accuracy``, ...), ``best_of_test`` (the paper's reporting) and ``max_grad_norm``.
    """

    settings: Any
    model: torch.nn.Module
    adapter: Any
    train_loader: Iterable[Any]
    max_grad_norm: float = 0.0
    #: training examples and seconds so far (the throughput in each report)
    examples_seen: int = 0
    train_seconds: float = 0.0
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    shuffle: torch.Generator
    device: torch.device
    amp: bool
    prefix: str
    metric_name: str
    best_of_test: bool

    # -- hooks --------------------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """Called before each epoch's training (per-epoch LR schedules step here)."""

    def batch_loss(self, batch: Any) -> torch.Tensor:
        """The training loss of one batch from ``train_loader`` (forward under :meth:`autocast`)."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after each optimizer step (per-step LR schedules step here)."""

    def evaluate(self) -> tuple[float, float]:
        """(the task's metric, mean loss) on the evaluation split."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        """Train one epoch; the mean training loss (``FloatingPointError`` when it is not finite)."""
        self.model.train()
        total = torch.zeros((), device=self.device)
        count = 0
        started = time.perf_counter()
        for batch in self.train_loader:
            loss = self.batch_loss(batch)
            self.optimize(loss, self.max_grad_norm)
            self.after_step()
            size = len(batch[-1])  # batches are (inputs, labels)
            total += loss.detach().float() * size
            count += size
        mean = total.item() / max(count, 1)
        self.examples_seen += count
        self.train_seconds += time.perf_counter() - started
        common.check_finite(mean, epoch)
        return mean

    def setup_amp(self) -> None:
        """bf16 autocast where the GPU has it, fp16 with a gradient scaler otherwise; off on CPU."""
        bf16 = self.amp and torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and not bf16)

    def autocast(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def optimize(self, loss: torch.Tensor, max_grad_norm: float = 0.0) -> None:
        """One optimizer step on ``loss`` (gradient scaling under fp16, optional norm clipping)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def state(self, epoch: int, best: float) -> dict[str, Any]:
        """Everything a retried trial needs to continue after ``epoch``."""
        return {
            "epoch": epoch,
            "best": best,
            "trainable": [p.detach().cpu().clone() for p in self.params],
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": common.rng_state(),
            "shuffle": self.shuffle.get_state(),
        }

    def restore(self, state: Mapping[str, Any]) -> tuple[int, float]:
        """Load a :meth:`state`; returns (its epoch, the best value so far)."""
        saved = state["trainable"]
        if len(saved) != len(self.params) or any(a.shape != b.shape for a, b in zip(saved, self.params)):
            raise RuntimeError("trial checkpoint does not match this trial's trainable parameters")
        with torch.no_grad():
            for param, value in zip(self.params, saved):
                param.copy_(value.to(param.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        common.set_rng_state(state["rng"])
        self.shuffle.set_state(state["shuffle"])
        return int(state["epoch"]), float(state["best"])

    def fit(self, report: Report | None, resume: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Train for ``epochs``; call ``report(metrics, state)`` after each evaluated epoch.

        ``score`` is the epoch's metric, or under the paper protocol the best so far (its
        best-of-test reporting, also given as ``best_test_<metric>``). A non-finite evaluation loss
        raises ``FloatingPointError``: the weights are broken and the metric would be noise.
        """
        s = self.settings
        start, best = (0, -math.inf) if resume is None else self.restore(resume)
        method_params = int(self.adapter.num_parameters())
        head_params = sum(p.numel() for p in self.params) - method_params
        metrics: dict[str, Any] = {}
        started = time.perf_counter()
        self.examples_seen, self.train_seconds = 0, 0.0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        for epoch in range(start + 1, s.epochs + 1):
            self.start_epoch(epoch)
            train_loss = self.train_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]  # per-step schedules: where the epoch ended
            if epoch % s.eval_every and epoch != s.epochs:
                continue
            value, loss = self.evaluate()
            p = self.prefix
            if not math.isfinite(loss):
                raise FloatingPointError(f"non-finite {p} loss ({loss}) at epoch {epoch}")
            best = max(best, value)
            metrics = {
                "epoch": epoch,
                "score": best if self.best_of_test else value,
                f"{p}_{self.metric_name}": value,
                f"{p}_loss": loss,
                "train_loss": train_loss,
                "lr": lr,
                "trainable_params": method_params,
                "head_params": head_params,
                # the trial's cost (docs/internals.md): training throughput and peak memory so far
                "examples_per_second": self.examples_seen / max(self.train_seconds, 1e-9),
                **common.usage_metrics(self.device),
            }
            if self.best_of_test:
                metrics[f"best_test_{self.metric_name}"] = best
            if report is not None:
                report(metrics, self.state(epoch, best))
        metrics["seconds"] = time.perf_counter() - started
        return metrics
