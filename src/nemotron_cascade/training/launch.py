"""Launch a training loop as a multi-process (data-parallel) job from inside a Kedro node.

A node that trains with ``launch.world_size > 1`` does not train in its own process. It hands the
loop's inputs to :func:`run_distributed`, which

1. writes them to a fresh work dir: ``model/`` (``save_pretrained`` of the model and tokenizer),
   the task's data (``data.pt`` or ``data.json``, and for GRPO ``reward_model/`` when its reward
   reads one; :mod:`~nemotron_cascade.training.launch_tasks`), ``payload.json`` (task, model
   class, dtype, the loop's config as JSON, and the mid-stage resume block: ``resume_dir`` as an
   absolute path, the fingerprint, ``keep_final_state``);
2. starts ``torchrun`` or the ``deepspeed`` launcher (:func:`build_command`) on
   ``python -m nemotron_cascade.training.launch worker <workdir>``, its stdout and stderr in
   ``<workdir>/launch.log``, every rank with ``OMP_NUM_THREADS=threads_per_rank`` and without any
   ``MLFLOW_*`` variable (no rank can write to MLflow: the parent logs);
3. while the job runs, polls ``<workdir>/metrics.jsonl`` (rank 0 appends one line per logged step)
   and passes each line to ``on_metrics(metrics, step)`` (the node's MLflow logging);
4. at exit reads ``<workdir>/result/`` (history and the final full state dict, written by rank 0
   as ``result.tmp/`` and renamed: a crash leaves no half result), and removes the work dir
   (kept when ``NEMOTRON_CASCADE_KEEP_LAUNCH_DIR=1``). A non-zero exit raises a ``RuntimeError``
   with the command, the exit code and the tail of ``launch.log``.

Each rank (:func:`worker_main`) loads the payload, runs the task's loop with its DeepSpeed engine
(the loop shards every global batch over the ranks, ``training/engines.py``) and, on rank 0 only,
writes the metrics lines and the result. Other ranks write nothing in the work dir; their output
goes to the launcher's log.

Mid-stage resume (``sft``, ``reward_model``, ``grpo``): the loop saves DeepSpeed's sharded checkpoints to
``resume_dir`` every ``checkpoint_every`` steps (every rank its ZeRO shard, rank 0 the commit
record; :func:`~nemotron_cascade.training.resume.save_sharded`), and a relaunch with the same
fingerprint resumes from the last one. ``resume_dir`` must be a path every rank sees (several
nodes: a shared filesystem). Rank 0 also records in ``resume_dir/logged.json`` the last step whose
metrics it passed on, and a relaunch of the same run does not pass those steps again, so the
parent's MLflow run gets every step once even when the job died after logging a step its last
checkpoint does not hold. :data:`KILL_AFTER_STEP_ENV` (fault injection for tests: rank 0 kills
itself with SIGKILL right after passing that step on) makes such a death on purpose.

Tasks (:mod:`~nemotron_cascade.training.launch_tasks`: what each writes and how its ranks rebuild
it): ``sft`` (:func:`~nemotron_cascade.training.sft.train_sft` on packed blocks, also the tiny
model's pretraining), ``reward_model``
(:func:`~nemotron_cascade.training.reward_model.train_reward_model` on preference pairs) and
``grpo`` (:func:`~nemotron_cascade.rl.trainer.train_grpo`; the ranks rebuild the reward from its
registry name and the prompt renderer from its dotted path). The node-facing entry points are
:func:`train_sft_distributed`, :func:`train_reward_model_distributed` and
:func:`train_grpo_distributed`.
Several nodes: every node must see the work dir (``workdir_root`` on a shared filesystem); the
``deepspeed`` launcher starts the other nodes itself from a hostfile (pdsh over ssh), ``torchrun``
needs the same command started on every node (c10d rendezvous). Not tried here (one machine).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from nemotron_cascade.training.launch_config import (  # noqa: F401 (the launch API in one place)
    LAUNCHERS,
    WORKER_MODULE,
    LaunchConfig,
    build_command,
    child_env,
    free_port,
    launch_config,
)
from nemotron_cascade.training.launch_tasks import TASKS, dotted_path, load_model, save_model
from nemotron_cascade.training.loop import MetricsCallback

log = logging.getLogger(__name__)

KEEP_DIR_ENV = "NEMOTRON_CASCADE_KEEP_LAUNCH_DIR"
LOG_FILE, METRICS_FILE, PAYLOAD_FILE, RESULT_DIR = "launch.log", "metrics.jsonl", "payload.json", "result"
LOGGED_FILE = "logged.json"  # in resume_dir: the last step rank 0 passed on, for this run
KILL_AFTER_STEP_ENV = "NEMOTRON_CASCADE_KILL_AFTER_STEP"  # tests: rank 0 SIGKILLs itself after this step
LOG_TAIL_LINES = 40
FAIL_BEGIN, FAIL_END = "worker failed, traceback follows:", "end of the worker's traceback"
POLL_S = 0.2



# ------------------------------------------------------------------------------------------ parent
def resume_block(resume_dir: str | None, fingerprint: str, keep_final_state: bool) -> dict | None:
    """A payload's ``resume`` entry (``None`` without a ``resume_dir``): the directory made absolute,
    since the ranks run in the work dir (several nodes: it must be on a filesystem they all see)."""
    if not resume_dir:
        return None
    return {"dir": str(Path(resume_dir).resolve()), "fingerprint": fingerprint, "keep_final_state": keep_final_state}


def write_payload(wd: Path, task: str, payload: dict) -> None:
    """``payload`` (``model``, ``tokenizer``, ``data``, ``config``: a JSON-able dict; optionally
    ``resume``, see :func:`resume_block`) into ``wd``."""
    missing = sorted({"model", "tokenizer", "data", "config"} - set(payload))
    if missing:
        raise ValueError(f"launch payload misses {missing}")
    spec = save_model(payload["model"], payload["tokenizer"], wd / "model")
    TASKS[task].write_data(payload["data"], wd)
    (wd / PAYLOAD_FILE).write_text(json.dumps({"task": task, **spec, "config": payload["config"],
                                               "resume": payload.get("resume")}, indent=1))


class _MetricsTail:
    """New complete lines of a JSONL file that another process appends to."""

    def __init__(self, path: Path):
        self.path, self.pos = path, 0

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a line being written is read on the next poll
        self.pos += end
        return [json.loads(line) for line in chunk[:end].splitlines() if line.strip()]


def _log_excerpt(path: Path, n: int = LOG_TAIL_LINES) -> str:
    """The last ``n`` lines of the job's log, preceded by the first rank's traceback (written in one
    piece by :func:`main` between markers; the launcher's own summary often fills the tail)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    out = f"last lines of {path}:\n" + "\n".join(lines[-n:])
    begin = next((i for i, line in enumerate(lines) if line.endswith(FAIL_BEGIN)), None)
    if begin is None:
        return out
    end = next((i for i in range(begin + 1, len(lines)) if lines[i].endswith(FAIL_END)), len(lines))
    tb = lines[begin:end + 1]
    if len(tb) > n:
        tb = tb[:2] + ["  ..."] + tb[-(n - 3):]
    return "\n".join(tb) + "\n" + out


def _stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End the launcher and every rank it started (its own process group): SIGTERM, then SIGKILL;
    then SIGKILL whatever the group still holds (a rank the launcher left behind)."""
    if proc.poll() is None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=grace_s)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is empty: nothing left behind


def run_distributed(task: str, payload: dict, cfg: LaunchConfig,
                    on_metrics: MetricsCallback | None = None) -> dict:
    """Run ``task`` on ``cfg.world_size`` ranks; ``{"history", "state_dict", "world_size", "command", "workdir"}``.

    ``state_dict`` is the final full state dict (CPU tensors, memory-mapped from the result file);
    ``workdir`` only still exists when ``NEMOTRON_CASCADE_KEEP_LAUNCH_DIR=1``. ``on_metrics`` gets
    rank 0's ``(metrics, step)`` of every logged step while the job runs. A job that exits non-zero
    or outlives ``cfg.timeout_s`` raises ``RuntimeError`` (command, exit code, log tail).
    """
    import torch

    if task not in TASKS:
        raise ValueError(f"unknown launch task {task!r}; expected one of {sorted(TASKS)}")
    if cfg.workdir_root:
        Path(cfg.workdir_root).mkdir(parents=True, exist_ok=True)
    wd = Path(tempfile.mkdtemp(prefix=f"launch-{task}-", dir=cfg.workdir_root))
    try:
        write_payload(wd, task, payload)
        if cfg.nnodes == 1 and cfg.master_port is None:
            cfg = dataclasses.replace(cfg, master_port=free_port(cfg.master_addr or "127.0.0.1"))
        cmd = build_command(cfg, [WORKER_MODULE, "worker", str(wd)], job_id=wd.name)
        env = child_env(cfg)
        if cfg.launcher == "deepspeed" and cfg.hostfile is not None:  # exported to the other nodes
            (wd / ".deepspeed_env").write_text("".join(f"{k}={env[k]}\n" for k in ["OMP_NUM_THREADS", *cfg.env]))
        pretty = shlex.join(cmd)
        log.info("launching %s on %d rank(s): %s", task, cfg.world_size, pretty)
        if cfg.launcher == "torchrun" and cfg.nnodes > 1:
            log.warning("torchrun on %d nodes: start the same command on the other %d node(s)", cfg.nnodes,
                        cfg.nnodes - 1)
        rc, seconds = _supervise(cmd, env, wd, cfg.timeout_s, on_metrics)
        if rc != 0:
            what = f"timed out after {cfg.timeout_s} s" if rc is None else f"failed with exit code {rc}"
            raise RuntimeError(f"distributed {task} job {what}\ncommand: {pretty}\n{_log_excerpt(wd / LOG_FILE)}")
        res_dir = wd / RESULT_DIR
        if not (res_dir / "result.json").exists():
            raise RuntimeError(f"distributed {task} job exited 0 but rank 0 wrote no result\ncommand: {pretty}\n"
                               f"{_log_excerpt(wd / LOG_FILE)}")
        result = json.loads((res_dir / "result.json").read_text())
        # mmap: the tensors stay readable after the work dir is removed (the file lives while mapped)
        state = torch.load(res_dir / "model.pt", map_location="cpu", weights_only=True, mmap=True)
        log.info("distributed %s: %d rank(s), %.1f s", task, cfg.world_size, seconds)
        return {"history": result["history"], "state_dict": state, "world_size": result["world_size"],
                "command": cmd, "workdir": str(wd)}
    finally:
        if os.environ.get(KEEP_DIR_ENV) == "1":
            log.info("keeping the launch work dir %s (%s=1)", wd, KEEP_DIR_ENV)
        else:
            shutil.rmtree(wd, ignore_errors=True)


def _supervise(cmd: list[str], env: dict, wd: Path, timeout_s: float | None,
               on_metrics: MetricsCallback | None) -> tuple[int | None, float]:
    """Run ``cmd`` in its own process group, streaming the metrics file; ``(exit code or None on
    timeout, seconds)``. The job is killed if this process stops waiting for any reason."""
    metrics = _MetricsTail(wd / METRICS_FILE)

    def relay():
        for line in metrics.read():
            if on_metrics:
                on_metrics(line["metrics"], line["step"])

    t0 = time.monotonic()
    with open(wd / LOG_FILE, "ab") as out:  # O_APPEND: every write of a rank lands whole at the end
        proc = subprocess.Popen(cmd, cwd=wd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            while proc.poll() is None:
                relay()
                if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                    _stop(proc)
                    return None, time.monotonic() - t0
                time.sleep(POLL_S)
            relay()
            return proc.returncode, time.monotonic() - t0
        finally:
            _stop(proc)


# ------------------------------------------------------------------------------------------ worker
def _write_result(wd: Path, model, history: list[dict], world_size: int) -> None:
    """Rank 0: ``result.tmp/`` (weights, then ``result.json``), renamed to ``result/``."""
    import torch

    tmp = wd / f"{RESULT_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
    (tmp / "result.json").write_text(json.dumps({"history": history, "rank": 0, "world_size": world_size}))
    os.replace(tmp, wd / RESULT_DIR)


class LoggedSteps:
    """Rank 0's record of the last step whose metrics it passed on (``<resume_dir>/logged.json``,
    with the run's fingerprint and world size): a relaunch of the same run skips those steps."""

    def __init__(self, resume: dict | None, world_size: int):
        self.resume, self.world_size, self.through = resume, world_size, 0
        if resume:
            try:
                rec = json.loads((Path(resume["dir"]) / LOGGED_FILE).read_text())
                if (rec.get("fingerprint"), rec.get("world_size")) == (resume["fingerprint"], world_size):
                    self.through = int(rec["step"])
            except (OSError, ValueError, KeyError, TypeError):
                pass

    def seen(self, step: int) -> bool:
        return step <= self.through

    def mark(self, step: int) -> None:
        self.through = step
        if not self.resume:
            return
        path = Path(self.resume["dir"])
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f"{LOGGED_FILE}.tmp"
        tmp.write_text(json.dumps({"fingerprint": self.resume["fingerprint"], "world_size": self.world_size,
                                   "step": step}))
        os.replace(tmp, path / LOGGED_FILE)


def worker_main(workdir: str) -> None:
    """One rank of a launched job (``python -m nemotron_cascade.training.launch worker <workdir>``)."""
    wd = Path(workdir)
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    logging.basicConfig(level=logging.INFO, format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s")
    spec = json.loads((wd / PAYLOAD_FILE).read_text())
    log.info("rank %d of %d: %s in %s", rank, world, spec["task"], wd)
    task = TASKS[spec["task"]]
    cfg = task.make_config(spec["config"])  # a bad config fails here, before torch and the model load
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    model = load_model(wd / "model", spec)
    from nemotron_cascade.models import load_tokenizer

    tokenizer = load_tokenizer(str(wd / "model"))
    metrics_file = open(wd / METRICS_FILE, "a") if rank == 0 else None
    resume = spec.get("resume")
    logged = LoggedSteps(resume, world) if rank == 0 else None
    kill_after = int(os.environ.get(KILL_AFTER_STEP_ENV) or 0)

    def on_metrics(m: dict, step: int) -> None:
        if logged.seen(step):
            return  # an earlier launch of this run passed it on before it died
        metrics_file.write(json.dumps({"step": step, "rank": rank, "metrics": m}) + "\n")
        metrics_file.flush()
        logged.mark(step)
        if step == kill_after:
            log.warning("%s=%d: killing rank 0 (fault injection)", KILL_AFTER_STEP_ENV, step)
            os.kill(os.getpid(), signal.SIGKILL)

    try:
        history = task.run(wd, model, tokenizer, cfg, on_metrics if rank == 0 else None, resume)
    finally:
        if metrics_file:
            metrics_file.close()
    if rank == 0:
        _write_result(wd, model, history, world)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ loops
def _resolved_engine_config(cfg) -> dict:
    """``cfg`` (SFTConfig / RMConfig / GRPOConfig) as JSON-able params, its DeepSpeed config resolved to a dict
    here (the ranks need no ``conf/``); refuses the one-process ``torch`` engine."""
    from nemotron_cascade.training import engines

    if cfg.engine != "deepspeed":
        raise ValueError(f"a launched job (launch.world_size > 1) needs engine: deepspeed, got {cfg.engine!r} "
                         "(the torch engine trains one process)")
    return {**dataclasses.asdict(cfg), "deepspeed": engines.load_deepspeed_config(cfg.deepspeed)}


def _train_launched(task: str, model, tokenizer, data, params: dict, launch: LaunchConfig,
                    on_metrics: MetricsCallback | None, resume: dict | None) -> list[dict]:
    """Run ``task``'s loop as a launched job on ``model`` (the payload :func:`run_distributed` writes),
    load the final weights into ``model`` in place and return the loop's history."""
    res = run_distributed(task, {"model": model, "tokenizer": tokenizer, "data": data, "config": params,
                                 "resume": resume}, launch, on_metrics)
    model.load_state_dict(res["state_dict"])
    model.eval()
    return res["history"]


def train_sft_distributed(model, tokenizer, blocks, cfg, launch: LaunchConfig,
                          on_metrics: MetricsCallback | None = None, *, resume_dir: str | None = None,
                          fingerprint: str = "", keep_final_state: bool = False) -> list[dict]:
    """:func:`~nemotron_cascade.training.sft.train_sft` as a launched job; ``model`` gets the final
    weights in place; the history as ``train_sft`` returns it. With ``resume_dir`` (a path every
    rank sees) the ranks save and resume mid-stage state as ``train_sft`` does (module docstring)."""
    return _train_launched("sft", model, tokenizer, blocks, _resolved_engine_config(cfg), launch, on_metrics,
                           resume_block(resume_dir, fingerprint, keep_final_state))


def train_reward_model_distributed(model, tokenizer, train_pairs, val_pairs, cfg, launch: LaunchConfig,
                                   on_metrics: MetricsCallback | None = None, *, resume_dir: str | None = None,
                                   fingerprint: str = "", keep_final_state: bool = False) -> list[dict]:
    """:func:`~nemotron_cascade.training.reward_model.train_reward_model` as a launched job;
    ``model`` gets the final weights in place. With ``resume_dir`` (a path every rank sees) the
    ranks save and resume mid-stage state as ``train_reward_model`` does (module docstring)."""
    return _train_launched("reward_model", model, tokenizer, {"train": train_pairs, "validation": val_pairs},
                           _resolved_engine_config(cfg), launch, on_metrics,
                           resume_block(resume_dir, fingerprint, keep_final_state))


def train_grpo_distributed(model, tokenizer, rows, reward: str, cfg, launch: LaunchConfig,
                           on_metrics: MetricsCallback | None = None, *, render_prompt, reward_model=None,
                           diagnostics=None, generator=None, resume_dir: str | None = None, fingerprint: str = "",
                           keep_final_state: bool = False) -> list[dict]:
    """:func:`~nemotron_cascade.rl.trainer.train_grpo` as a launched job; ``model`` gets the final
    weights in place; the history as ``train_grpo`` returns it. With ``resume_dir`` (a path every
    rank sees) the ranks save and resume mid-stage state as ``train_grpo`` does (module docstring).

    The ranks rebuild everything by name: the reward from the registry (``reward``, around
    ``reward_model``, a checkpoint, when given), the diagnostics from their names, and
    ``render_prompt`` and ``generator`` (``None``: ``cfg.rollout_engine``'s, built on every rank; a
    factory ``(cfg, model, tokenizer) -> generator`` for tests) from their ``module:name`` paths.
    All of it is checked here, before anything starts.
    """
    from nemotron_cascade.rewards.registry import make_reward
    from nemotron_cascade.rl.diagnostics import combine

    params = _resolved_engine_config(cfg)
    if cfg.prompts_per_step % launch.world_size:
        raise ValueError(f"train.prompts_per_step ({cfg.prompts_per_step}) must be a multiple of launch.world_size "
                         f"({launch.world_size}): every rank samples an equal share of each step's prompts")
    make_reward(reward, reward_model=reward_model, group_size=cfg.group_size)  # unknown name, missing RM: here
    combine(diagnostics)
    data = {"rows": rows, "reward": reward, "reward_model": reward_model, "diagnostics": diagnostics,
            "render_prompt": dotted_path(render_prompt, "render_prompt"),
            "generator": None if generator is None else dotted_path(generator, "generator")}
    return _train_launched("grpo", model, tokenizer, data, params, launch, on_metrics,
                           resume_block(resume_dir, fingerprint, keep_final_state))


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}")
    ap.add_argument("command", choices=["worker"])
    ap.add_argument("workdir")
    args, _ = ap.parse_known_args(argv)  # tolerates a launcher's --local_rank
    try:
        worker_main(args.workdir)
    except Exception:
        # one write, so that the ranks' tracebacks do not interleave in the shared log
        rank = os.environ.get("RANK", "0")
        os.write(2, f"[rank {rank}] {FAIL_BEGIN}\n{traceback.format_exc()}[rank {rank}] {FAIL_END}\n".encode())
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
