"""``genft-search``: commands only. Each parses its flags, calls the library and prints the result.

A ``UserError`` anywhere becomes one line on stderr and exit code 2; heavy modules (Ray, torch) are
imported by the commands that need them, so ``--help`` and ``status`` answer fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from genft_search import __version__
from genft_search.errors import StoreUnavailable, UserError

__all__ = ["main"]

PROG = "genft-search"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (``genft-search run: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _storage_flag(parser: argparse.ArgumentParser, *, file: bool = False) -> None:
    """``--storage``; commands that read a study file fall back to the file's ``storage`` first."""
    first = "the file's storage, else " if file else ""
    parser.add_argument("--storage", metavar="URL",
                        help=f"study store URL (default: {first}$GENFT_STORAGE, else "
                             f"sqlite:///genft_studies.db)")


def _file_arg(parser: argparse.ArgumentParser, what: str = "study file") -> None:
    parser.add_argument("file", metavar="FILE", help=f"{what} (YAML)")
    _storage_flag(parser, file=True)


def _runs_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", metavar="DIR",
                        help="trial checkpoints and Ray's experiment state (default: $GENFT_RUNS_DIR, else "
                             "~/.cache/genft-search/ray_results); on a cluster, storage every node reaches "
                             "(the same NFS path, or a bucket URI such as s3://...)")


def _study_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY", help="study name (<name>/<task>, or <name> for one task)")
    _storage_flag(parser)


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse turns the ValueError into its one-line usage error)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_positive_int.__name__ = "integer >= 1"  # what argparse names in "invalid <type> value"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Hyperparameter search and ablations for GenFT on Ray Tune + "
                                            "Optuna, with the study kept in an SQL store.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("run", help="run or resume the studies of a study file",
                       description="Run the study file's studies (one per task); running it again "
                                   "resumes them.")
    _file_arg(p)
    p.add_argument("--n-trials", type=int, metavar="N", help="total finished trials per study "
                                                             "(overrides budget)")
    p.add_argument("--address", metavar="ADDR", help="address of an existing Ray cluster (default: local)")
    _runs_dir_flag(p)
    p.add_argument("--allow-space-change", action="store_true",
                   help="continue a study even though its search space or method changed")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--tasks-at-once", type=_positive_int, metavar="N",
                   help="tasks of the file proposing trials at once in one Ray Tune experiment, so slots "
                        "stay busy while any task has trials left (default: all; 1: one after another)")

    p = sub.add_parser("validate", help="check a study file without running or writing anything",
                       description="Check a study file, its data and its store, and say what run would do.")
    _file_arg(p)
    p.add_argument("--address", metavar="ADDR",
                   help="a Ray cluster (auto or HOST:PORT): report its resources and how many trials fit")

    p = sub.add_parser("status", help="list the studies in a store with their trial counts",
                       description="List the studies in the store: finished/total, states, best value.")
    _storage_flag(p)

    p = sub.add_parser("best", help="show the best trial of a study",
                       description="Show a study's best trial (or Pareto front) and its full trial config.")
    _study_arg(p)
    p.add_argument("--evaluate-test", action="store_true",
                   help="retrain the best setting on train+val and evaluate it once on test")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="with --evaluate-test: retrain with seeds 1..N, test each once, store every seed "
                        "(test_evaluations; seeds already stored are not retrained)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("export", help="export a study's trials as CSV, JSON or a LaTeX table",
                       description="Write a study's trials as CSV, JSON or a LaTeX (booktabs) table.")
    _study_arg(p)
    p.add_argument("--format", required=True, choices=("csv", "json", "latex"), help="output format")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")

    p = sub.add_parser("dashboard", help="serve optuna-dashboard on the same store (127.0.0.1, read-only)",
                       description="Serve optuna-dashboard for the store, bound to 127.0.0.1 unless --host "
                                   "says otherwise. Read-only: deleting, renaming, telling trials and "
                                   "editing notes or attributes are refused unless --allow-writes is given.")
    _storage_flag(p)
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 in a container whose port is published)")
    p.add_argument("--allow-writes", action="store_true",
                   help="let the dashboard change the study (delete, rename, tell, notes); it has no login")

    p = sub.add_parser("ablate", help="run an ablation study file (variants x seeds)",
                       description="Run an ablation: a grid over GenFT variants and seeds around a "
                                   "base setting.")
    _file_arg(p, "ablation file")
    p.add_argument("--address", metavar="ADDR", help="address of an existing Ray cluster (default: local)")
    _runs_dir_flag(p)
    p.add_argument("--out", metavar="DIR", help="folder for the ablation table")

    p = sub.add_parser("report", help="write the offline HTML report of a study or ablation",
                       description="Write an offline HTML report computed from the store.")
    p.add_argument("name", metavar="STUDY_OR_ABLATION", help="study or ablation name")
    _storage_flag(p)
    p.add_argument("--out", metavar="DIR", help="output folder")

    p = sub.add_parser("compare", help="compare study files side by side per benchmark, with seeds, cost "
                                       "and significance",
                       description="One table per benchmark in the paper's layout (methods x tasks, group "
                                   "means, parameters, GPU-hours), then per pair of methods the per-task "
                                   "difference with a 95%% interval over seeds and a Wilcoxon test across "
                                   "tasks. Prints Markdown; --out also writes CSV, LaTeX and HTML.")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="study-file name (its studies <name>/<task>) or study name; one row each")
    _storage_flag(p)
    p.add_argument("--out", metavar="DIR", help="also write compare.md, .csv, .tex and .html (offline) here")

    p = sub.add_parser("assets", help="prepare the built-in offline assets",
                       description="Manage the built-in offline assets (small data and models).")
    assets = p.add_subparsers(dest="assets_command", metavar="ACTION", parser_class=_Parser)
    assets.required = True
    q = assets.add_parser("prepare", help="build the built-in assets into the cache",
                          description="Build the named built-in assets (all when none is named).")
    q.add_argument("names", nargs="*", metavar="NAME", help="asset names (default: all)")
    q.add_argument("--force", action="store_true", help="rebuild even if present")
    return parser


# ---------------------------------------------------------------------------------------------------
# commands


def _optional(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise UserError(f"{what}: not available in this installation (module {module} is "
                            f"missing)") from None
        raise


def _cmd_run(args: argparse.Namespace) -> int:
    from genft_search.config import load_study_config
    from genft_search.tune import run_study

    config = load_study_config(args.file)
    studies = run_study(config, storage=args.storage, n_trials=args.n_trials, address=args.address,
                        allow_space_change=args.allow_space_change, progress=not args.quiet,
                        runs_dir=args.runs_dir, tasks_at_once=args.tasks_at_once)
    from genft_search import store

    for study in studies.values():
        counts = store.retrying(store.state_counts, study, storage=study)
        best = store.retrying(store.best_trials, study, storage=study)
        shown = ""
        if len(best) == 1 and best[0].value is not None:
            shown = f", best {best[0].value:.6g} (trial {best[0].number})"
        elif len(best) > 1:
            shown = f", {len(best)} trials on the Pareto front"
        print(f"{study.study_name}: {counts['finished']} finished ({counts['complete']} complete, "
              f"{counts['pruned']} pruned, {counts['failed']} failed){shown}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from genft_search.config import load_study_config
    from genft_search.tune import validate_study

    config = load_study_config(args.file)
    for line in validate_study(config, storage=args.storage, address=args.address):
        print(line)
    return 0


def _open_existing(url_flag: str | None):
    from genft_search import store

    url = store.resolve_storage_url(url_flag)
    return store.open_storage(url, create=False, source="--storage" if url_flag else "storage")


def _cmd_status(args: argparse.Namespace) -> int:
    import optuna

    from genft_search import store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = _open_existing(args.storage)
    names = store.study_names(rdb)
    if not names:
        print(f"no studies in {store.redact_url(rdb.url)}")
        return 0
    rows = [("study", "method", "finished", "complete", "pruned", "failed", "running", "best", "cost")]
    for name in names:
        study = optuna.load_study(study_name=name, storage=rdb)
        c = store.state_counts(study)
        record = store.StudyRecord.read(study)
        total = record.n_trials
        best = store.best_trials(study)
        best_text = "-"
        if len(best) == 1 and best[0].value is not None:
            best_text = f"{best[0].value:.4g} (#{best[0].number})"
        elif len(best) > 1:
            best_text = f"{len(best)} Pareto"
        cost = store.study_cost(study)
        rows.append((name, str(record.method or "-"), f"{c['finished']}/{total or '?'}",
                     str(c["complete"]), str(c["pruned"]), str(c["failed"]), str(c["running"]), best_text,
                     _cost_text(cost)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _cost_text(cost: Any) -> str:
    """Device-hours of a study's search (``status``): GPU-h when it used GPUs, else CPU-h."""
    if cost.unknown == cost.trials:  # no trial yet, or none stored a cost (made outside genft-search)
        return "-"
    unit = "GPU-h" if cost.gpu_seconds else "CPU-h"
    shown = f"{cost.device_hours:.3g} {unit}"
    peak = cost.peak_gpu_memory_mb if cost.peak_gpu_memory_mb is not None else cost.peak_rss_mb
    if peak is not None:
        shown += f", peak {peak:.0f} MB"
    return shown + (" (est.)" if cost.estimated or cost.unknown else "")


def _cmd_best(args: argparse.Namespace) -> int:
    import optuna

    from genft_search import store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.seeds is not None and not args.evaluate_test:
        raise UserError("best: --seeds: only with --evaluate-test; expected --evaluate-test --seeds N")
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"best: --seeds: {args.seeds} seeds; expected an integer >= 1")
    rdb = _open_existing(args.storage)
    study = store.find_study(rdb, args.study)
    best = store.best_trials(study)
    if not best:
        raise UserError(f"study: {study.study_name!r} has no complete trial yet; expected at least one")
    out = []
    for trial in best:
        entry: dict[str, Any] = {"study": study.study_name, "trial": trial.number,
                                 "values": trial.values, "params": trial.params,
                                 "budget": trial.user_attrs.get(store.ATTR_BUDGET),
                                 "config": store.trial_config(study, trial),
                                 "cost": store.cost_summary(trial)}
        if args.evaluate_test and args.seeds is not None:
            from genft_search.evaluation import evaluate_seeds

            entry["test_seeds"] = evaluate_seeds(study, trial, args.seeds)
        elif args.evaluate_test:
            from trainables import registry

            metrics = registry.evaluate_test(entry["config"])
            entry["test"] = metrics
            store.StudyRecord(test_evaluation={"trial": trial.number, "metrics": metrics}).write(
                study, "test_evaluation")
        out.append(entry)
    study_cost = store.study_cost(study)
    if args.json:
        for entry in out:
            entry["study_cost"] = study_cost.as_dict()
        print(json.dumps(out if len(out) > 1 else out[0], indent=2, default=str))
        return 0
    for entry in out:
        values = ", ".join(f"{v:.6g}" for v in entry["values"])
        print(f"{entry['study']}: trial {entry['trial']}: value {values} (budget {entry['budget']})")
        for key, value in entry["params"].items():
            print(f"  {key}: {value}")
        if entry["cost"]:
            print("  cost: " + ", ".join(f"{k}={v}" for k, v in entry["cost"].items()))
        if "test" in entry:
            print("  test: " + ", ".join(f"{k}={v}" for k, v in entry["test"].items()))
        if "test_seeds" in entry:
            print(_seeds_text(entry["test_seeds"]))
    print(f"search cost: {study_cost.summary()}")
    return 0


def _seeds_text(entries: list[dict[str, Any]]) -> str:
    """Per seed the test metrics, then mean ± std over seeds of each."""
    from genft_search.stats import mean_std

    lines = []
    keys: list[str] = []
    for entry in entries:
        metrics = {k: v for k, v in entry["metrics"].items() if k.startswith("test_")}
        keys.extend(k for k in metrics if k not in keys)
        shown = ", ".join(f"{k}={v:.6g}" for k, v in metrics.items())
        lines.append(f"  test, seed {entry['seed']}: {shown}")
    summary = [f"{k}={mean_std(e['metrics'][k] for e in entries if k in e['metrics'])}" for k in keys]
    lines.append(f"  test over {len(entries)} seeds (mean ± std): " + ", ".join(summary))
    return "\n".join(lines)


def _cmd_export(args: argparse.Namespace) -> int:
    import optuna

    from genft_search import store
    from genft_search.report import export_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = _open_existing(args.storage)
    study = store.find_study(rdb, args.study)
    text = export_trials(study, args.format)
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise UserError(f"--out: cannot write {args.out}: {exc.strerror}; expected a writable "
                            f"path") from None
        print(args.out)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from genft_search import store

    dashboard = _optional("optuna_dashboard", "dashboard")
    rdb = _open_existing(args.storage)
    served: Any = rdb
    mode = "read-write"
    if not args.allow_writes:
        from bottle import HTTPError

        served = store.ReadOnlyStorage(rdb, refuse=lambda reason: HTTPError(403, reason))
        mode = "read-only; --allow-writes to change the study"
    print(f"optuna-dashboard for {store.redact_url(rdb.url)} on http://{args.host}:{args.port}/ ({mode}; "
          f"Ctrl-C stops it)",
          flush=True)
    dashboard.run_server(served, host=args.host, port=args.port)
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    ablation = _optional("genft_search.ablation", "ablate")
    result = ablation.run_ablation(args.file, storage=args.storage, address=args.address, out_dir=args.out,
                                   runs_dir=args.runs_dir)
    print(str(result))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    report = _optional("genft_search.report", "report")
    path = report.write_report(args.name, storage=args.storage, out_dir=args.out)
    print(path)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    report = _optional("genft_search.report", "compare")
    comparison = report.compare_studies(args.names, storage=args.storage)
    paths = report.write_comparison(comparison, args.out) if args.out else []
    sys.stdout.write(report.comparison_markdown(comparison))
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_assets(args: argparse.Namespace) -> int:
    assets = _optional("trainables.assets", "assets")
    paths = assets.prepare(args.names or None, force=args.force)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


_COMMANDS = {"run": _cmd_run, "validate": _cmd_validate, "status": _cmd_status, "best": _cmd_best,
             "export": _cmd_export, "dashboard": _cmd_dashboard, "ablate": _cmd_ablate, "report": _cmd_report,
             "compare": _cmd_compare, "assets": _cmd_assets}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``genft-search``; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except UserError as exc:
        sys.stdout.flush()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except StoreUnavailable as exc:
        sys.stdout.flush()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return StoreUnavailable.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
