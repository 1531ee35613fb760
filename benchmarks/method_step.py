"""Training-step benchmark of GenFT against LoRA, a frozen backbone and two slow GenFT references.

A step is forward + backward + AdamW on the trainable parameters (method + head). Every variant of
a model is measured in the same run, interleaved (in a fresh random order each round), and the
median over the measured rounds is reported, because other processes share the CPU. Variants:

- ``frozen``: backbone frozen, only the head trains (``attach_method("linear", ...)``);
- ``lora``: LoRA rank 8 on q and v, one A/B pair each (``attach_method("lora", ...)``);
- ``genft``: the library (``attach_method("genft", ...)``), a = 82, b = 2;
- ``unfused`` / ``naive``: ``benchmarks/_reference_genft.py`` (per-matrix generator calls and a
  separate x·ΔW matmul; the naive one also forms the d × d U = U2 U1ᵀ of the paper's Algorithm 1);
- inference: a GenFT model after ``merge()`` against the frozen model, forward only.

The last line is ``RESULT genft_over_lora=… genft_over_unfused=… naive_over_genft=…
merged_over_frozen=…`` from the first model at batch 8: for each pair, the median over rounds of
the ratio of the two variants' (median) times within a round, so that a slow drift of the machine
cancels; the ratios of the overall medians are printed above it. ``--quick`` is a reduced run (< 5 minutes
on 2 CPU threads) printing the same line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reference_genft import ReferenceSettings, attach_reference, trainable

from genft_search.method import attach_method

TRAIN_VARIANTS = ("frozen", "lora", "genft", "unfused", "naive")
INFER_VARIANTS = ("frozen_infer", "merged_infer")
INFER_REPS = 3
NUM_CLASSES = 100
# GenFT setting of the benchmark: the paper's caltech101 row (a = 82, b = 2, identity activations).
GENFT_CONFIG = {"shared_dim": 82, "specific_dim": 2, "sigma1": "identity", "sigma2": "identity",
                "init_a": "kaiming_uniform", "init_b": "kaiming_uniform", "w0_ratio": 1.0,
                "scaling": 1.0, "dropout": 0.1}
LORA_CONFIG = {"lora_r": 8, "lora_alpha": 8, "lora_dropout": 0.0}


@dataclass
class Plan:
    """What one run measures: models with their batch sizes, rounds, threads."""

    models: dict[str, tuple[int, ...]]
    img_size: int = 224
    warmup: int = 1
    steps: int = 5
    threads: int = 0
    device: str = "cpu"
    max_seconds: float = 0.0  # per model: no new round once the next would end past this (0: no limit)
    amp: bool = False  # forward and loss under bf16 autocast (as the trainables train on a GPU)


@dataclass
class Runner:
    """One model instance of one variant, ready to time a step on a given batch."""

    name: str
    model: nn.Module
    step: Callable[[Tensor, Tensor], None]
    params: int
    samples: dict[int, list[float]] = field(default_factory=dict)  # wall seconds per step
    cpu: dict[int, list[float]] = field(default_factory=dict)  # process CPU seconds (all threads)
    rounds: dict[int, list[int]] = field(default_factory=dict)  # the round each sample was taken in
    faults: dict[int, list[int]] = field(default_factory=dict)  # minor page faults of the process


def _fresh_model(name: str, state: dict[str, Tensor] | None, img_size: int, device: str) -> nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES, img_size=img_size)
    if state is not None:
        model.load_state_dict(state)
    return model.to(device)


def _autocast(device: str, amp: bool) -> torch.autocast:
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=amp)


def _train_step_fn(model: nn.Module, params: Sequence[nn.Parameter], device: str = "cpu",
                   amp: bool = False) -> Callable[[Tensor, Tensor], None]:
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4)

    def step(x: Tensor, y: Tensor) -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def _infer_step_fn(model: nn.Module, device: str = "cpu",
                   amp: bool = False) -> Callable[[Tensor, Tensor], None]:
    def step(x: Tensor, y: Tensor) -> None:
        model.eval()
        with torch.inference_mode(), _autocast(device, amp):
            model(x)

    return step


def _count(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def build_runners(model_name: str, img_size: int, device: str,
                  variants: Sequence[str] = TRAIN_VARIANTS + INFER_VARIANTS,
                  amp: bool = False) -> list[Runner]:
    """One independent model per variant, all from the same backbone weights."""
    state = _fresh_model(model_name, None, img_size, "cpu").state_dict()
    runners: list[Runner] = []
    frozen_model: nn.Module | None = None
    settings = ReferenceSettings(**{k: v for k, v in GENFT_CONFIG.items() if not k.startswith("init")})
    for variant in variants:
        if variant == "frozen_infer" and frozen_model is not None:
            model = frozen_model
        else:
            model = _fresh_model(model_name, state, img_size, device)
        if variant in ("frozen", "frozen_infer"):
            adapter = attach_method("linear", model, {})
            frozen_model = model
            params = list(adapter.trainable_parameters())
            own = 0
        elif variant == "lora":
            adapter = attach_method("lora", model, LORA_CONFIG)
            params, own = list(adapter.trainable_parameters()), adapter.num_parameters()
        elif variant in ("genft", "merged_infer"):
            adapter = attach_method("genft", model, GENFT_CONFIG)
            params, own = list(adapter.trainable_parameters()), adapter.num_parameters()
            if variant == "merged_infer":
                model.eval()
                adapter.merge()
        else:
            ref = attach_reference(model, variant, settings)
            params, own = list(trainable(model)), _count(ref.parameters())
        if variant in INFER_VARIANTS:
            step = _infer_step_fn(model, device, amp)
        else:
            step = _train_step_fn(model, params, device, amp)
        runners.append(Runner(variant, model, step, own))
    return runners


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(runners: Sequence[Runner], batches: Sequence[int], plan: Plan) -> None:
    """Interleaved rounds: each round times one step of every variant at every batch size."""
    gen = torch.Generator().manual_seed(0)
    data = {b: (torch.randn(b, 3, plan.img_size, plan.img_size, generator=gen).to(plan.device),
                torch.randint(0, NUM_CLASSES, (b,), generator=gen).to(plan.device)) for b in batches}
    start = time.perf_counter()
    rng = random.Random(0)
    for rnd in range(plan.warmup + plan.steps):
        for b in batches:
            x, y = data[b]
            infer = [r for r in runners if r.name in INFER_VARIANTS]
            groups = [[r] for r in runners if r.name not in INFER_VARIANTS]
            # The inference variants are compared only with each other and their steps are short:
            # time them back to back (in a random order), INFER_REPS times a round, so that both
            # see the same state of the machine and one disturbance weighs less.
            groups += [infer] * (INFER_REPS if infer else 0)
            rng.shuffle(groups)  # a fresh order per round: no variant always follows the same one
            for r in (r for group in groups for r in rng.sample(group, len(group))):
                _sync(plan.device)
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                c0, t0 = time.process_time(), time.perf_counter()
                r.step(x, y)
                _sync(plan.device)
                t1, c1 = time.perf_counter(), time.process_time()
                f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                if rnd >= plan.warmup:
                    r.samples.setdefault(b, []).append(t1 - t0)
                    r.cpu.setdefault(b, []).append(c1 - c0)
                    r.rounds.setdefault(b, []).append(rnd)
                    r.faults.setdefault(b, []).append(f1 - f0)
        elapsed = time.perf_counter() - start
        print(f"# round {rnd + 1}/{plan.warmup + plan.steps} done ({elapsed:.0f}s)",
              file=sys.stderr, flush=True)
        per_round = elapsed / (rnd + 1)
        measured = rnd + 1 - plan.warmup
        if plan.max_seconds and measured >= 1 and elapsed + per_round > plan.max_seconds:
            if measured < plan.steps:
                print(f"# time budget reached: {measured} measured steps instead of {plan.steps}",
                      file=sys.stderr, flush=True)
            return


RATIOS = {"genft_over_lora": ("genft", "lora"), "genft_over_unfused": ("genft", "unfused"),
          "naive_over_genft": ("naive", "genft"), "merged_over_frozen": ("merged_infer", "frozen_infer")}


def _ratios(ratio: Callable[[str, str], float]) -> dict[str, float]:
    return {key: ratio(num, den) for key, (num, den) in RATIOS.items()}


def _median_ratio(samples: Callable[[str], list[float]]) -> Callable[[str, str], float]:
    """Ratio of the two variants' medians over all measured rounds."""
    return lambda num, den: statistics.median(samples(num)) / statistics.median(samples(den))


def _paired_ratio(samples: Callable[[str], list[float]],
                  rounds: Callable[[str], list[int]]) -> Callable[[str, str], float]:
    """Median over rounds of the ratio of the two variants' times within the same round.

    Slow drifts of the machine's speed (other tenants, thermal) move both variants of a round
    together, so pairing by round cancels them where a ratio of overall medians does not.
    """

    def per_round(name: str) -> dict[int, float]:
        by: dict[int, list[float]] = {}
        for value, rnd in zip(samples(name), rounds(name)):
            by.setdefault(rnd, []).append(value)
        return {rnd: statistics.median(vs) for rnd, vs in by.items()}

    def ratio(num: str, den: str) -> float:
        a, b = per_round(num), per_round(den)
        return statistics.median(a[r] / b[r] for r in a if r in b)

    return ratio


def _result_ratios(by: dict[str, Runner], b: int) -> tuple[dict[str, float], ...]:
    """Paired wall, paired CPU and overall-median wall ratios at batch ``b``."""

    def rounds(n: str) -> list[int]:
        return by[n].rounds[b]

    return (_ratios(_paired_ratio(lambda n: by[n].samples[b], rounds)),
            _ratios(_paired_ratio(lambda n: by[n].cpu[b], rounds)),
            _ratios(_median_ratio(lambda n: by[n].samples[b])))


def _fmt(ratios: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in ratios.items())


def run(plan: Plan, out: Callable[[str], None] = print) -> dict[str, float]:
    """Measure the plan, print the table, return the RESULT ratios (first model, batch 8)."""
    threads = plan.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    out(f"# torch {torch.__version__}, timm {timm.__version__}, device {plan.device}, threads {threads}, "
        f"image {plan.img_size}², amp {'bf16' if plan.amp else 'off'}, warmup {plan.warmup}, "
        f"measured steps {plan.steps} (median); "
        "wall = elapsed seconds, cpu = process CPU seconds (less sensitive to other processes)")
    out(f"{'model':<22} {'batch':>5} {'variant':<13} {'own params':>10} {'wall s':>8} {'min s':>7} "
        f"{'cpu s':>7} {'vs lora':>7} {'(cpu)':>6} {'vs frozen':>9} {'(cpu)':>6} {'faults':>7}")
    rows: list[dict[str, object]] = []
    result: dict[str, float] = {}
    cpu_result: dict[str, float] = {}
    overall: dict[str, float] = {}
    for mi, (model_name, batches) in enumerate(plan.models.items()):
        t_build = time.perf_counter()
        runners = build_runners(model_name, plan.img_size, plan.device, amp=plan.amp)
        print(f"# {model_name}: built {len(runners)} variants in {time.perf_counter() - t_build:.1f}s",
              file=sys.stderr, flush=True)
        measure(runners, batches, plan)
        by = {r.name: r for r in runners}
        out(f"# {model_name}: {len(runners[0].samples[batches[0]])} measured steps per variant and batch")
        for b in batches:
            wall = {n: statistics.median(r.samples[b]) for n, r in by.items()}
            cpu = {n: statistics.median(r.cpu[b]) for n, r in by.items()}
            for r in runners:
                n = r.name
                if n in TRAIN_VARIANTS:
                    rel = f"{wall[n] / wall['lora']:7.3f} {cpu[n] / cpu['lora']:6.3f} {'':9} {'':6}"
                else:
                    base, base_cpu = wall["frozen_infer"], cpu["frozen_infer"]
                    rel = f"{'':7} {'':6} {wall[n] / base:9.3f} {cpu[n] / base_cpu:6.3f}"
                faults = statistics.median(r.faults[b])
                out(f"{model_name:<22} {b:>5} {n:<13} {r.params:>10} {wall[n]:8.3f} {min(r.samples[b]):7.3f} "
                    f"{cpu[n]:7.3f} {rel} {faults:7.0f}")
                rows.append({"model": model_name, "batch": b, "variant": n, "own_params": r.params,
                             "median_s": wall[n], "median_cpu_s": cpu[n], "samples_s": r.samples[b],
                             "samples_cpu_s": r.cpu[b], "sample_rounds": r.rounds[b],
                             "minor_faults": r.faults[b]})
            if mi == 0 and b == 8:
                result, cpu_result, overall = _result_ratios(by, b)
        del runners, by
    if path := os.environ.get("GENFT_BENCH_JSON"):
        dump = {"rows": rows, "result": result, "cpu_result": cpu_result, "overall_medians": overall}
        Path(path).write_text(json.dumps(dump, indent=1))
    if not result:
        raise SystemExit("the first model was not measured at batch 8; no RESULT line")
    out(f"# ratios of the overall wall medians: {_fmt(overall)}")
    out(f"# same paired ratios from CPU time: {_fmt(cpu_result)}")
    out(f"RESULT {_fmt(result)}")
    return result


def plan_from_args(argv: Sequence[str] | None = None) -> Plan:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced run (< 5 min on 2 threads)")
    ap.add_argument("--model", action="append", metavar="NAME[:B1,B2]",
                    help="timm model and batch sizes (repeatable); the first one gives the RESULT line")
    ap.add_argument("--steps", type=int, help="measured steps per variant (median)")
    ap.add_argument("--warmup", type=int, help="unmeasured rounds first")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for forward and loss (mixed precision)")
    ap.add_argument("--max-seconds", type=float, help="time budget per model for the rounds "
                    "(stops early, keeping at least one measured step; --quick: 200)")
    args = ap.parse_args(argv)
    if args.model:
        models: dict[str, tuple[int, ...]] = {}
        for spec in args.model:
            name, _, bs = spec.partition(":")
            models[name] = tuple(int(b) for b in bs.split(",")) if bs else (8,)
    elif args.quick:
        models = {"vit_base_patch16_224": (8,)}
    else:
        models = {"vit_base_patch16_224": (8, 32), "vit_small_patch16_224": (8, 32)}
    steps = args.steps if args.steps is not None else (3 if args.quick else 5)
    warmup = args.warmup if args.warmup is not None else 1
    budget = args.max_seconds if args.max_seconds is not None else (200.0 if args.quick else 0.0)
    return Plan(models=models, img_size=args.img_size, warmup=warmup, steps=steps,
                threads=args.threads, device=args.device, max_seconds=budget, amp=args.amp)


def main(argv: Sequence[str] | None = None) -> int:
    run(plan_from_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
