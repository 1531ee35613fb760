"""The checkpointing sleep trainable, recording where each start of a trial ran (cluster tests).

Both nodes of a ``ray.cluster_utils.Cluster`` share 127.0.0.1, so the node is told apart by Ray's node
id: each start writes ``<trial id>-<random>.node`` holding it and the trial's ``lr`` (which names the
Optuna trial) under the fixed ``marks`` folder.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.support.checkpoint_trainable import train as checkpointed_train


def train(config: dict[str, Any]) -> None:
    import ray
    from ray import tune

    trial = tune.get_context().get_trial_id()
    mark = Path(config["marks"]) / f"{trial}-{uuid.uuid4().hex[:6]}.node"
    mark.write_text(f"{ray.get_runtime_context().get_node_id()} {config['lr']!r}")
    checkpointed_train(config)


def nodes_used(marks: Path) -> dict[str, set[str]]:
    """``{node id: {trial ids started there}}``."""
    out: dict[str, set[str]] = {}
    for path in marks.glob("*.node"):
        out.setdefault(path.read_text().split()[0], set()).add(path.name.rsplit("-", 1)[0])
    return out


def lrs_started_on(marks: Path, node_id: str) -> set[float]:
    """The ``lr`` of every trial start on ``node_id``."""
    found = set()
    for path in marks.glob("*.node"):
        node, lr = path.read_text().split()
        if node == node_id:
            found.add(float(lr))
    return found
