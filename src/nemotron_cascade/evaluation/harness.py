"""A standard harness beside the project's verifiers: AIME 2024, MATH-500, GPQA-diamond,
LiveCodeBench and IFEval through EleutherAI's lm-evaluation-harness (``lm-eval``, the gpu extra),
so the gpu profile's matrix can be set beside the paper's table.

What runs (:data:`DEFAULT_TASKS`, one matrix column ``harness/<column>`` each):

| column | lm-eval task | metric, filter | mode (``evaluation.thinking``) |
|---|---|---|---|
| aime24 | ``aime24`` (Maxwell-Jia/AIME_2024, ``\\boxed{}`` or ``$...$`` answer) | exact_match, none | math |
| math500 | ``minerva_math500`` (HuggingFaceH4/MATH-500), zero-shot | math_verify, none | math |
| gpqa_diamond | ``gpqa_diamond_cot_zeroshot`` (Idavidrein/gpqa, gated) | exact_match, flexible-extract | science |
| livecodebench | the project's lm-eval task (:mod:`.harness_lcb`: lm-eval 0.4.13 has none) | pass@1, none | code |
| ifeval | ``ifeval`` (google/IFEval) | prompt_level_strict_acc, none | instruction_following |

How a checkpoint is evaluated: lm-eval's ``vllm`` backend (``backend``; ``hf`` for the CPU test) on
the checkpoint's directory, prompts through the tokenizer's chat template (``apply_chat_template``),
greedy, ``max_gen_toks`` = ``evaluation.max_new_tokens``, each task in its domain's thinking mode
(``enable_thinking`` of the template; the ``</think>`` trace is cut off before scoring). Tasks are
run in one ``simple_evaluate`` per mode, on one model instance.

``tasks.<column>.overrides`` replaces keys of the lm-eval task's YAML (e.g. ``dataset_path: json``
and ``dataset_kwargs: {data_files: ...}`` for a local copy of the Hub dataset, as the tests do).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "harness/"

DEFAULT_TASKS = {
    "aime24": {"task": "aime24", "metric": "exact_match", "filter": "none", "domain": "math"},
    "math500": {"task": "minerva_math500", "metric": "math_verify", "filter": "none", "domain": "math",
                "overrides": {"num_fewshot": 0}},
    "gpqa_diamond": {"task": "gpqa_diamond_cot_zeroshot", "metric": "exact_match", "filter": "flexible-extract",
                     "domain": "science"},
    "livecodebench": {"task": "livecodebench", "metric": "pass@1", "filter": "none", "domain": "code"},
    "ifeval": {"task": "ifeval", "metric": "prompt_level_strict_acc", "filter": "none",
               "domain": "instruction_following"},
}
SPEC_KEYS = {"task", "metric", "filter", "domain", "overrides"}


@dataclass(frozen=True)
class HarnessConfig:
    """``params:evaluation_harness``: off in base and test, ``auto`` in the gpu profile."""

    enabled: bool | str = False         # true, false, or "auto": on where the gpu environment is (:meth:`active`)
    backend: str = "vllm"               # lm-eval model type: vllm on GPUs, hf (transformers) on CPU
    model_args: dict | None = None      # more backend arguments (gpu_memory_utilization, max_model_len, ...)
    tasks: dict = field(default_factory=lambda: {c: dict(s) for c, s in DEFAULT_TASKS.items()})
    batch_size: int | str = "auto"
    limit: int | None = None            # items per task (None: the whole benchmark, as the paper)
    think_end_token: str = "</think>"
    apply_chat_template: bool = True
    seed: int = 1234

    def __post_init__(self):
        from nemotron_cascade.config import check_fields

        check_fields(self, "params evaluation_harness")
        if isinstance(self.enabled, str) and self.enabled != "auto":
            raise ValueError(f"params evaluation_harness: enabled must be true, false or auto, got {self.enabled!r}")
        for column, spec in self.tasks.items():
            unknown = set(spec) - SPEC_KEYS
            missing = {"task", "metric", "domain"} - set(spec)
            if unknown or missing:
                raise ValueError(f"params evaluation_harness.tasks.{column}: unknown keys {sorted(unknown)}, "
                                 f"missing keys {sorted(missing)} (keys: {sorted(SPEC_KEYS)})")

    def active(self) -> bool:
        """Whether the harness runs. ``auto``: when lm-eval is installed and, for the vLLM backend, a
        CUDA device is there (the gpu environment of requirements/gpu.txt on a GPU machine); off
        elsewhere with a warning, e.g. the gpu profile's CPU smoke run, which has neither."""
        if self.enabled != "auto":
            return bool(self.enabled)
        import importlib.util

        import torch

        missing = [what for what, ok in [("lm-eval", importlib.util.find_spec("lm_eval") is not None),
                                         ("a CUDA device", self.backend != "vllm" or torch.cuda.is_available())]
                   if not ok]
        if missing:
            log.warning("evaluation_harness: enabled auto, and %s missing: no harness/ columns "
                        "(the gpu environment: requirements/gpu.txt)", " and ".join(missing))
        return not missing


def result_key(spec: dict) -> str:
    """lm-eval's key of a task's score in ``results[task]``: ``"<metric>,<filter>"``."""
    return f"{spec['metric']},{spec.get('filter') or 'none'}"


def to_columns(results: dict, tasks: dict) -> dict:
    """The matrix columns ``harness/<column>`` from ``simple_evaluate``'s ``results`` mapping
    (``{task: {"<metric>,<filter>": value, ...}}``), for the columns of ``tasks`` it holds."""
    out = {}
    for column, spec in tasks.items():
        scores = results.get(spec["task"])
        if scores is None:
            continue
        key = result_key(spec)
        if key not in scores:
            raise KeyError(f"lm-eval task {spec['task']!r} reported no {key!r} (column {column}); "
                           f"it reported {sorted(k for k in scores if ',' in k)}")
        out[PREFIX + column] = round(float(scores[key]), 4)
    return out


def add_columns(table, metrics: list[dict]):
    """``table`` (the matrix, one row per metrics dict) with a column per ``harness/<column>`` key
    the metrics carry, in their order; ``table`` itself when they carry none."""
    columns = list(dict.fromkeys(k for m in metrics for k in m if k.startswith(PREFIX)))
    if not columns:
        return table
    if len(table) != len(metrics):
        raise ValueError(f"{len(table)} matrix rows for {len(metrics)} metric sets")
    table = table.copy()
    for column in columns:
        table[column] = [m.get(column) for m in metrics]
    return table


def by_mode(tasks: dict, thinking: dict) -> dict[bool, dict]:
    """The columns grouped by the thinking mode of their domain (``evaluation.thinking``; on when unset)."""
    groups: dict[bool, dict] = {}
    for column, spec in tasks.items():
        groups.setdefault(bool(thinking.get(spec["domain"], True)), {})[column] = spec
    return groups


def task_specs(tasks: dict, workdir: Path) -> list:
    """What ``simple_evaluate(tasks=...)`` takes for ``tasks``: a registered task's name; a YAML in
    ``workdir`` that includes the registered YAML and replaces its ``overrides``; the project's own
    tasks (:mod:`.harness_lcb`) as config dicts."""
    from nemotron_cascade.evaluation import harness_lcb

    specs = []
    for column, spec in tasks.items():
        name, overrides = spec["task"], dict(spec.get("overrides") or {})
        if name == harness_lcb.TASK:
            specs.append(harness_lcb.task_config(**overrides))
        elif not overrides:
            specs.append(name)
        else:
            path = workdir / f"{column}.yaml"
            # JSON is YAML: lm-eval reads the file with its YAML loader
            path.write_text(json.dumps({"include": str(registered_yaml(name)), "task": name, **overrides}))
            specs.append(str(path))
    return specs


def registered_yaml(task: str) -> Path:
    """The YAML file of a task lm-eval registers."""
    from lm_eval.tasks import TaskManager

    entry = TaskManager().task_index.get(task)
    if entry is None or not entry.yaml_path:
        raise KeyError(f"lm-eval has no task {task!r} with a YAML file (params evaluation_harness.tasks)")
    return Path(entry.yaml_path)


def build_lm(checkpoint_dir: str, cfg: HarnessConfig):
    """lm-eval's model of ``cfg.backend`` on the checkpoint directory (the generation budget is
    given per call, :func:`evaluate`)."""
    from lm_eval.api.registry import get_model

    args = {"pretrained": checkpoint_dir, "think_end_token": cfg.think_end_token,
            "enable_thinking": True, "batch_size": cfg.batch_size, **(cfg.model_args or {})}  # mode: set_thinking
    if cfg.backend == "vllm":
        args.setdefault("seed", cfg.seed)
    lm = get_model(cfg.backend).create_from_arg_obj(args)
    if cfg.backend == "hf":
        # lm-eval's HF model bounds generation by max_length; a checkpoint's generation_config
        # max_new_tokens (the project saves 2048) would take precedence over it in generate()
        lm.model.generation_config.max_new_tokens = None
    return lm


def set_thinking(lm, thinking: bool) -> None:
    """The chat template's ``enable_thinking`` for the next prompts. lm-eval 0.4.13's vLLM model
    passes ``lm.enable_thinking`` to the template; its HF model passes ``lm.chat_template_args``,
    which holds the flag when the model was built with one (:func:`build_lm` always gives one)."""
    lm.enable_thinking = thinking
    if "enable_thinking" in (getattr(lm, "chat_template_args", None) or {}):
        lm.chat_template_args = {**lm.chat_template_args, "enable_thinking": thinking}


def evaluate(lm, thinking: dict, cfg: HarnessConfig, max_gen_toks: int, samples: bool = False) -> tuple[dict, dict]:
    """Every task of ``cfg`` on ``lm``: the matrix columns, and lm-eval's ``results`` per task
    (``samples``: with its per-item records under ``"samples"``)."""
    from lm_eval import simple_evaluate

    columns, raw = {}, {"samples": {}}
    with tempfile.TemporaryDirectory(prefix="harness-") as tmp:
        for mode, tasks in by_mode(cfg.tasks, thinking).items():
            set_thinking(lm, mode)
            out = simple_evaluate(model=lm, tasks=task_specs(tasks, Path(tmp)), limit=cfg.limit,
                                  apply_chat_template=cfg.apply_chat_template, log_samples=samples,
                                  gen_kwargs={"max_gen_toks": max_gen_toks, "do_sample": False, "temperature": 0.0},
                                  random_seed=cfg.seed, numpy_random_seed=cfg.seed, torch_random_seed=cfg.seed,
                                  fewshot_random_seed=cfg.seed, confirm_run_unsafe_code=True)
            raw.update(out["results"])
            raw["samples"].update(out.get("samples") or {})
            columns.update(to_columns(out["results"], tasks))
            log.info("harness (thinking %s): %s", mode, {c: columns.get(PREFIX + c) for c in tasks})
    return columns, raw


def evaluate_checkpoint(checkpoint_dir: str, thinking: dict, cfg: HarnessConfig, max_gen_toks: int) -> dict:
    """The ``harness/<column>`` scores of the checkpoint saved in ``checkpoint_dir``."""
    lm = build_lm(checkpoint_dir, cfg)
    return evaluate(lm, thinking, cfg, max_gen_toks)[0]
