"""Built-in offline assets: where they are cached and how they are prepared on first use.

Cache: ``$GENFT_HOME`` or ``~/.cache/genft-search`` (never inside the git checkout).

| asset name    | what                                               | path under the cache          |
|---------------|----------------------------------------------------|-------------------------------|
| ``dsprites``  | procedural dSprites as VTAB-1k ``dsprites_loc``/``dsprites_ori`` | ``vtab-1k/<task>/`` |
| ``vit_mnist`` | the project's small timm ViT pretrained on MNIST   | ``models/vit_mnist/``         |

Study files reach them with ``data: {kind: vtab1k, root: builtin, tasks: [dsprites_loc, dsprites_ori]}``
and ``model: {name: builtin, checkpoint: builtin}``. When ``trainables.data.builtin_text`` exists, its
assets (text models and GLUE-style files) are prepared by :func:`prepare` too.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

from genft_search.errors import UserError
from trainables.data.builtin.cache import build_once, genft_home

__all__ = [
    "asset_names",
    "builtin_vtab_root",
    "ensure_builtin_vit",
    "ensure_dsprites",
    "genft_home",
    "prepare",
]

BUILTIN = "builtin"
DSPRITES_TASKS = ("dsprites_loc", "dsprites_ori")
_DSPRITES_SEEDS = {"dsprites_loc": 1, "dsprites_ori": 2}


def builtin_vtab_root() -> Path:
    """The VTAB-1k root holding the built-in dSprites tasks."""
    return genft_home() / "vtab-1k"


def builtin_vit_dir() -> Path:
    return genft_home() / "models" / "vit_mnist"


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True)


def ensure_dsprites(task: str, force: bool = False) -> Path:
    """The folder of one built-in dSprites task, written on first use."""
    from trainables.data.builtin import dsprites

    if task not in DSPRITES_TASKS:
        raise UserError(f"data: tasks: {task!r} is not a built-in task; with root: builtin expected one of "
                        f"{', '.join(DSPRITES_TASKS)}")
    target = builtin_vtab_root() / task

    def write(folder: Path) -> None:
        with _progress(1, f"genft-search: rendering {task}") as bar:
            dsprites.write_vtab_task(folder, task, seed=_DSPRITES_SEEDS[task])
            bar.update(1)

    return build_once(target, force, write)


def ensure_builtin_vit(force: bool = False) -> Path:
    """The folder of the built-in ViT (``model.safetensors`` + ``config.json``), pretrained on first use."""
    from trainables.data.builtin import vit

    def write(folder: Path) -> None:
        steps = 500
        with _progress(steps, "genft-search: pretraining the built-in ViT on MNIST") as bar:
            vit.pretrain(folder, steps=steps, progress=bar)

    return build_once(builtin_vit_dir(), force, write)


def _text_module():
    name = "trainables.data.builtin_text"
    return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None


def asset_names() -> list[str]:
    """Names :func:`prepare` accepts: the vision assets, then the text engineer's, if present."""
    names = ["dsprites", "vit_mnist"]
    text = _text_module()
    if text is not None and hasattr(text, "asset_names"):
        names += list(text.asset_names())
    return names


def prepare(names: Iterable[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Prepare the named assets (all when None); name -> path. ``genft-search assets prepare`` calls it."""
    wanted = list(names) if names is not None else asset_names()
    unknown = [name for name in wanted if name not in asset_names()]
    if unknown:
        raise UserError(f"assets: unknown asset {unknown[0]!r}; expected one of {', '.join(asset_names())}")
    prepared: dict[str, Path] = {}
    text_names = [name for name in wanted if name not in ("dsprites", "vit_mnist")]
    if "dsprites" in wanted:
        for task in DSPRITES_TASKS:
            ensure_dsprites(task, force=force)
        prepared["dsprites"] = builtin_vtab_root()
    if "vit_mnist" in wanted:
        prepared["vit_mnist"] = ensure_builtin_vit(force=force)
    if text_names:
        text = _text_module()
        result = text.prepare(text_names, force=force) if text is not None else {}
        prepared.update({name: Path(path) for name, path in dict(result or {}).items()})
    return prepared
