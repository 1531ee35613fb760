"""A VTAB-format GenFT study of 8 trials at ``gpu: 0.25`` (four trials share one GPU), with the peak
memory of every trial; the second half of ``benchmarks/gpu_check.sh``.

It runs the real engine (``run_study``: Ray Tune, an Optuna study in SQLite) and the real vision
trainable (ViT-B/16 at 224², bf16 autocast on the GPU) on a synthetic VTAB-1k task and a random-init
checkpoint written by ``synthetic_vtab.py``. The trainable is wrapped only to add ``peak_mem_mib`` to
each epoch's report: on CUDA ``torch.cuda.max_memory_allocated`` since the trial started (the trial's
own process), on CPU the process's peak RSS. ``--cpu-smoke`` runs the same path tiny on CPU (a 2-block
ViT at 32², 4 trials, one CPU each) for CI.

    python benchmarks/gpu_study.py --out OUTDIR [--cpu-smoke]

Writes ``OUTDIR/gpu_study.yaml``, ``gpu_study.db`` and ``gpu_study.json`` (one row per trial), and
prints ``RESULT trials=… complete=… max_at_once=… peak_mem_mib_max=…``; ``max_at_once`` comes from
the trials' start and end times in the store.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_vtab import write_checkpoint, write_task

TASK = "synthetic"

#: the GPU run and the CPU smoke: the same study, sized
SHAPES: dict[str, dict[str, Any]] = {
    "gpu": {"model": {"name": "vit_base_patch16_224"}, "size": 224, "n": (800, 200, 200), "epochs": 3,
            "batch_size": 64, "n_trials": 8, "resources": {"cpu": 2, "gpu": 0.25}, "num_workers": 2},
    "cpu-smoke": {"model": {"name": "vit_tiny_patch16_224", "image_size": 32, "patch_size": 8, "depth": 2,
                            "embed_dim": 48, "num_heads": 3},
                  "size": 32, "n": (32, 16, 8), "epochs": 1, "batch_size": 16, "n_trials": 4,
                  "resources": {"cpu": 1, "gpu": 0}, "num_workers": 0},
}


def model_kwargs(model: dict[str, Any]) -> dict[str, Any]:
    """``timm.create_model`` options of a study's ``model`` (as ``trainables/models.py`` builds it)."""
    kwargs = {k: v for k, v in model.items() if k not in ("name", "image_size")}
    if "image_size" in model:
        kwargs["img_size"] = model["image_size"]
    return kwargs


def _peak_mib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measured_train(config: dict[str, Any]) -> None:
    """``trainables.vision.train``, each report carrying ``peak_mem_mib`` of this trial so far."""
    import torch

    from trainables import common, vision

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    original = common.report_epoch

    def report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
        original({**metrics, "peak_mem_mib": _peak_mib()}, state)

    common.report_epoch = report
    try:
        vision.train(config)
    finally:
        common.report_epoch = original


def study_doc(out: Path, shape: dict[str, Any]) -> dict[str, Any]:
    ckpt = out / "work" / f"{shape['model']['name']}_random.safetensors"
    return {
        "name": "gpu_check",
        "storage": f"sqlite:///{out / 'gpu_study.db'}",
        "method": "genft",
        "model": {**shape["model"], "checkpoint": str(ckpt)},
        "data": {"kind": "vtab1k", "root": str(out / "work" / "vtab-1k"), "tasks": [TASK],
                 "num_workers": shape["num_workers"]},
        "protocol": "honest",
        "space": "paper",
        "fixed": {"epochs": shape["epochs"], "batch_size": shape["batch_size"], "warmup_epochs": 1},
        "sampler": {"name": "random", "seed": 0},
        "scheduler": {"name": "fifo"},
        "budget": {"n_trials": shape["n_trials"]},
        "resources": shape["resources"],
        "objective": {"metric": "val_top1", "direction": "maximize"},
    }


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """Most trials running at one time, from their (start, end) times (an end before a start at the
    same instant)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--cpu-smoke", action="store_true", help="the same path, tiny, on CPU")
    args = ap.parse_args(argv)
    shape = SHAPES["cpu-smoke" if args.cpu_smoke else "gpu"]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    n_train, n_val, n_test = shape["n"]
    write_task(out / "work" / "vtab-1k", TASK, n_train=n_train, n_val=n_val, n_test=n_test,
               size=shape["size"])
    doc = study_doc(out, shape)
    write_checkpoint(doc["model"]["checkpoint"], shape["model"]["name"], **model_kwargs(shape["model"]))
    path = out / "gpu_study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    from genft_search import store
    from genft_search.config import load_study_config
    from genft_search.tune import run_study

    studies = run_study(load_study_config(path), trainable=measured_train)
    study = studies[TASK]
    rows = []
    for trial in study.get_trials(deepcopy=False):
        metrics = trial.user_attrs.get(store.ATTR_METRICS) or {}
        rows.append({"number": trial.number, "state": trial.state.name, "value": trial.value,
                     "params": trial.params, "peak_mem_mib": metrics.get("peak_mem_mib"),
                     "train_seconds": trial.user_attrs.get(store.ATTR_TRAIN_SECONDS),
                     "start": trial.datetime_start.timestamp() if trial.datetime_start else None,
                     "end": trial.datetime_complete.timestamp() if trial.datetime_complete else None})
    (out / "gpu_study.json").write_text(json.dumps(rows, indent=2, default=str))
    print(f"{'trial':>5} {'state':<9} {'val_top1':>8} {'peak MiB':>9} {'seconds':>8}  "
          "shared_dim specific_dim")
    for r in rows:
        value = f"{r['value']:.2f}" if r["value"] is not None else "-"
        peak = f"{r['peak_mem_mib']:.0f}" if r["peak_mem_mib"] is not None else "-"
        print(f"{r['number']:>5} {r['state']:<9} {value:>8} {peak:>9} {r['train_seconds'] or 0:>8.1f}  "
              f"{r['params'].get('shared_dim')} {r['params'].get('specific_dim')}")
    peaks = [r["peak_mem_mib"] for r in rows if r["peak_mem_mib"] is not None]
    spans = [(r["start"], r["end"]) for r in rows if r["start"] and r["end"]]
    complete = sum(r["state"] == "COMPLETE" for r in rows)
    print(f"RESULT trials={len(rows)} complete={complete} max_at_once={most_at_once(spans)} "
          f"peak_mem_mib_max={max(peaks) if peaks else 0:.0f}")
    return 0 if complete == shape["n_trials"] else 1


if __name__ == "__main__":
    sys.exit(main())
