"""Ray clusters of our own for tests, invisible to everyone else's Ray on the machine.

A ``ray.cluster_utils.Cluster`` head writes its address to ``$RAY_TMPDIR/ray/ray_current_cluster``,
where a bare ``ray.init()`` looks; pointing ``RAY_TMPDIR`` at a fresh short folder (Unix socket paths
are limited to ~100 characters) keeps that file, and the nodes' sessions, away from other developers'
and CI jobs' Ray instances. Only the processes the cluster started are stopped (``Cluster.shutdown``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

HEAD_SCRIPT = """
import sys
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
print(cluster.address, flush=True)
try:
    sys.stdin.read()
finally:
    cluster.shutdown()
"""


@contextlib.contextmanager
def ray_tmpdir() -> Iterator[str]:
    """A fresh, short ``RAY_TMPDIR`` (removed afterwards)."""
    path = tempfile.mkdtemp(prefix="gr", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def head_in_subprocess(tmpdir: str) -> Iterator[str]:
    """A one-CPU Ray head in its own process, as ``ray start --head`` leaves one; yields its address.

    Closing the process's stdin makes it shut its own cluster down (never ``ray stop``, which would
    stop every Ray on the machine).
    """
    env = {**os.environ, "RAY_TMPDIR": tmpdir}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-c", HEAD_SCRIPT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address, "the Ray head did not start"
        yield address
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def two_node_cluster() -> Iterator[Any]:
    """A head (1 CPU) and one worker node (1 CPU) in this process, under a private ``RAY_TMPDIR``."""
    from ray.cluster_utils import Cluster

    with ray_tmpdir() as tmp:
        old = os.environ.get("RAY_TMPDIR")
        os.environ["RAY_TMPDIR"] = tmp
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        try:
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            yield cluster
        finally:
            cluster.shutdown()
            if old is None:
                os.environ.pop("RAY_TMPDIR", None)
            else:
                os.environ["RAY_TMPDIR"] = old
