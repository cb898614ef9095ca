"""The launch configuration of a multi-process training job and the launcher command it gives.

``LaunchConfig`` (the ``launch:`` block of a stage's ``train`` parameters, validated by
:func:`launch_config`), :func:`build_command` (``torchrun`` or the ``deepspeed`` launcher on
the worker module) and :func:`child_env` (the ranks' environment). Used by
:mod:`~nemotron_cascade.training.launch`, which runs and supervises the job.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LAUNCHERS = ("torchrun", "deepspeed")
WORKER_MODULE = "nemotron_cascade.training.launch"


# ------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class LaunchConfig:
    """How a node launches its training job (the ``launch`` block of a stage's ``train`` params).

    ``world_size`` is the total number of ranks, ``world_size / nnodes`` per node. ``world_size``
    1 (the default) means no launch: the loop runs in the node's process, as without this block.
    """

    world_size: int = 1
    launcher: str = "torchrun"             # "torchrun" | "deepspeed"
    nnodes: int = 1
    hostfile: str | None = None            # deepspeed only: MPI-style "host slots=N" lines
    master_addr: str | None = None         # None: 127.0.0.1 on one node; required by torchrun on several
    master_port: int | None = None         # None: a free port of this machine
    threads_per_rank: int = 1              # OMP_NUM_THREADS of every rank
    timeout_s: float | None = None         # kill the job after this long; None: no limit
    env: dict = field(default_factory=dict)  # extra environment variables of every rank
    workdir_root: str | None = None        # where work dirs are made (None: the system temp dir);
                                           # several nodes: a directory every node sees
    launcher_args: tuple = ()              # extra arguments for the launcher itself, verbatim

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def per_node(self) -> int:
        return self.world_size // self.nnodes


def _check(cond: bool, key: str, want: str, got: Any) -> None:
    if not cond:
        raise ValueError(f"launch.{key} must be {want}, got {got!r}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def launch_config(params: dict | None) -> LaunchConfig:
    """A :class:`LaunchConfig` from a ``launch`` params block (``None``/empty: world size 1)."""
    params = dict(params or {})
    known = [f.name for f in dataclasses.fields(LaunchConfig)]
    unknown = sorted(set(params) - set(known), key=str)
    if unknown:
        raise ValueError(f"launch: unknown key(s) {unknown}; expected some of {known}")
    cfg = LaunchConfig(**{k: tuple(v) if k == "launcher_args" and isinstance(v, list) else v
                          for k, v in params.items()})
    _check(_is_int(cfg.world_size) and cfg.world_size >= 1, "world_size", "an integer ≥ 1", cfg.world_size)
    _check(cfg.launcher in LAUNCHERS, "launcher", f"one of {LAUNCHERS}", cfg.launcher)
    _check(_is_int(cfg.nnodes) and cfg.nnodes >= 1, "nnodes", "an integer ≥ 1", cfg.nnodes)
    _check(cfg.world_size % cfg.nnodes == 0, "world_size",
           f"a multiple of nnodes ({cfg.nnodes})", cfg.world_size)
    _check(_is_int(cfg.threads_per_rank) and cfg.threads_per_rank >= 1, "threads_per_rank", "an integer ≥ 1",
           cfg.threads_per_rank)
    _check(cfg.master_port is None or (_is_int(cfg.master_port) and 0 < cfg.master_port < 65536), "master_port",
           "null or a port number (1-65535)", cfg.master_port)
    _check(cfg.master_addr is None or (isinstance(cfg.master_addr, str) and cfg.master_addr), "master_addr",
           "null or a host name/address", cfg.master_addr)
    _check(cfg.timeout_s is None or (isinstance(cfg.timeout_s, (int, float)) and not isinstance(cfg.timeout_s, bool)
                                     and cfg.timeout_s > 0), "timeout_s", "null or a number > 0", cfg.timeout_s)
    _check(isinstance(cfg.env, dict) and all(isinstance(k, str) for k in cfg.env), "env",
           "a mapping of variable names to values", cfg.env)
    mlflow_vars = sorted(k for k in cfg.env if k.upper().startswith("MLFLOW_"))
    _check(not mlflow_vars, "env", "free of MLFLOW_* variables (ranks never write to MLflow)", mlflow_vars)
    _check(isinstance(cfg.launcher_args, tuple) and all(isinstance(a, str) for a in cfg.launcher_args),
           "launcher_args", "a list of strings", cfg.launcher_args)
    _check(cfg.hostfile is None or cfg.launcher == "deepspeed", "hostfile",
           "null with launcher torchrun (a hostfile is the deepspeed launcher's)", cfg.hostfile)
    if cfg.nnodes > 1:
        _check(cfg.workdir_root is not None, "workdir_root",
               "a directory every node sees (a shared filesystem) when nnodes > 1", cfg.workdir_root)
        if cfg.launcher == "deepspeed":
            _check(cfg.hostfile is not None, "hostfile", "set for the deepspeed launcher when nnodes > 1",
                   cfg.hostfile)
        else:
            _check(cfg.master_addr is not None, "master_addr",
                   "the rendezvous host's address for torchrun when nnodes > 1", cfg.master_addr)
    return cfg


def free_port(addr: str = "127.0.0.1") -> int:
    """A port free on ``addr`` now (a later bind can still lose a race; rare)."""
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ command
def build_command(cfg: LaunchConfig, module_args: Sequence[str], job_id: str = "nemotron-cascade") -> list[str]:
    """The launcher command that runs ``python -m <module_args[0]> <module_args[1:]>`` on every rank.

    ``torchrun`` is called as ``python -m torch.distributed.run`` (the same program, the same
    Python as this process); ``deepspeed`` as ``python -m deepspeed.launcher.runner``. One node:
    ``--nproc_per_node W --nnodes 1 --master_addr A --master_port P`` (torchrun) or
    ``--num_gpus W --master_port P`` (deepspeed). Several nodes: torchrun's c10d rendezvous
    (``--rdzv_backend c10d --rdzv_endpoint A:P --rdzv_id <job_id>``: the same command on every
    node), or deepspeed's ``--hostfile H --num_nodes N --num_gpus W/N`` (it starts the other nodes).
    A ``None`` port becomes a free one.
    """
    module, *args = module_args
    port = cfg.master_port or free_port()
    if cfg.launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(cfg.per_node),
               "--nnodes", str(cfg.nnodes)]
        if cfg.nnodes == 1:
            cmd += ["--master_addr", cfg.master_addr or "127.0.0.1", "--master_port", str(port)]
        else:
            cmd += ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"{cfg.master_addr}:{port}", "--rdzv_id", job_id]
        return cmd + list(cfg.launcher_args) + ["-m", module, *args]
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner"]
    if cfg.hostfile is not None:
        cmd += ["--hostfile", cfg.hostfile, "--num_nodes", str(cfg.nnodes)]
    cmd += ["--num_gpus", str(cfg.per_node)]
    if cfg.master_addr is not None:
        cmd += ["--master_addr", cfg.master_addr]
    cmd += ["--master_port", str(port), "--no_local_rank"]
    return cmd + list(cfg.launcher_args) + ["--module", module, *args]


def child_env(cfg: LaunchConfig, base: dict | None = None) -> dict:
    """The ranks' environment: ``base`` (this process's) without ``MLFLOW_*``, with
    ``OMP_NUM_THREADS=threads_per_rank`` and ``cfg.env``."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.upper().startswith("MLFLOW_")}
    env.update(OMP_NUM_THREADS=str(cfg.threads_per_rank), PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in cfg.env.items()})
    return env
