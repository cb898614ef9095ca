"""The gpu profile's own pipelines, end to end, on the CPU at smoke size (run alone with
``pytest -k test_gpu_profile_smoke``).

``kedro run --env gpu`` on a copy of the project, with the profile's conf as it is and only three
kinds of override (:data:`SIZES`, :func:`locations`; a test checks that nothing else is touched):

* sizes: steps, batch sizes, lengths, item counts — so that the cascade runs in minutes on 2 cores;
* the model path: a Qwen3-0.6B-Base-format checkpoint written by ``save_pretrained`` at test time
  (tests/real_model.py: its configs disagree on eos as the real ones do), loaded by the code that
  loads ``Qwen/Qwen3-0.6B-Base``;
* data locations: a local copy of every Hub source and benchmark in the Hub's layout
  (tests/hub_mirror.py, read by the same ``load_dataset`` call as a hub id), a git mirror of the
  SWE rows' repositories (tests/swe_git.py: commits cannot be forged, so the copied SWE rows name
  the mirror's commits), and the teacher's OpenAI-compatible endpoint (generation/serve.py on the
  same checkpoint: the stand-in for ``vllm serve`` of the paper's teachers).

vLLM does not install here: the run's ``vllm`` is the CPU stand-in of tests/cpu_vllm, which refuses
what vLLM refuses (tests/generation/test_cpu_vllm.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
RL = ("rlhf", "if_rl", "math_rl", "math_rl_control", "code_rl", "swe_rl")
CASCADE_RL = tuple(s for s in RL if s != "math_rl_control")  # the control is a pipeline of its own
RL_SIZE = {"max_steps": 1, "prompts_per_step": 2, "group_size": 2, "length_schedule": [[0, 12]],
           "micro_batch_size": 4, "checkpoint_every": 1}
SFT_SIZE = {"block_size": 512, "batch_size": 2, "max_steps": 2, "warmup_steps": 0, "log_every": 1,
            "checkpoint_every": 1}
# every override of the smoke run that is a size (what the profile's conf says stays as it is)
SIZES: dict = {
    "sft": {"stage1": {"train": SFT_SIZE}, "stage2": {"train": SFT_SIZE}},
    "reward_model": {"train": {"batch_size": 4, "max_length": 384, "warmup_steps": 0}},
    **{stage: {"max_prompts": 4, "train": dict(RL_SIZE)} for stage in RL},
    "evaluation": {"max_new_tokens": 12, "max_items_per_domain": 3, "batch_size": 8,
                   "sampled": {"swe": {"k": 2, "max_items": 2}}},
    "preferences": {"max_pairs_per_domain": 16},
    # the catalog's RL split shares (runtime rl_share.<domain>): a few fixture rows per source must
    # still give every RL stage a prompt and SFT a sample
    "rl_share": {"math": 0.5, "code": 1.0, "swe": 0.5, "tool_calling": 0.3, "instruction_following": 0.8,
                 "general": 0.6},
    "teacher": {"batch_size": 8, "backends": {"openai": {"max_tokens": 12, "concurrency": 2},
                                              "openai_plain": {"max_tokens": 12, "concurrency": 2}}},
}
SIZES["swe_rl"]["train"]["context_schedule"] = [[0, 1024]]
SIZES["swe_rl"]["localisation"] = {"max_new_tokens": 8}
SIZE_KEYS = {"rl_share", "max_steps", "prompts_per_step", "group_size", "length_schedule", "context_schedule",
             "micro_batch_size", "rollout_batch_size", "checkpoint_every", "block_size", "batch_size",
             "warmup_steps", "log_every", "max_length", "max_prompts", "max_new_tokens", "max_items_per_domain",
             "k", "max_items", "max_pairs_per_domain", "max_tokens", "concurrency"}
LOCATION_KEYS = {"name_or_path", "tokenizer", "hub_root", "mirror", "url", "cache_dir", "base_url", "model"}


def locations(model: str, hub: str, mirror: str, cache: str, teacher_url: str) -> dict:
    """The overrides that say where things are: the model, the Hub copy, the git mirror, the teacher."""
    return {
        "hub_root": hub,  # read by every HF source and benchmark in conf/gpu/catalog.yml
        "base_model": {"name_or_path": model},
        "data_card": {"tokenizer": model},
        "swe_repositories": {"mirror": mirror, "url": None, "cache_dir": cache},
        "teacher": {"backends": {"openai": {"base_url": teacher_url, "model": "local"},
                                 "openai_plain": {"base_url": teacher_url, "model": "local"}}},
    }


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _leaves(d: dict, prefix: tuple = ()) -> list[tuple]:
    return [p for k, v in d.items() for p in (_leaves(v, prefix + (k,)) if isinstance(v, dict) else [prefix + (k,)])]


def _gpu_params() -> dict:
    from kedro.config import OmegaConfigLoader

    from nemotron_cascade import settings

    conf = TESTS.parent / "conf"
    return OmegaConfigLoader(conf_source=str(conf), env="gpu", **settings.CONFIG_LOADER_ARGS)["parameters"]


def test_gpu_profile_smoke_overrides_touch_only_sizes_and_locations():
    overrides = _merge(SIZES, locations("m", "h", "g", "c", "u"))
    params = _gpu_params()
    catalog = (TESTS.parent / "conf" / "gpu" / "catalog.yml").read_text()
    for path in _leaves(overrides):
        if path[0] in ("hub_root", "rl_share"):  # runtime parameters of the catalog, not parameters
            assert "${runtime_params:" + ".".join(path) + "," in catalog, f"{'.'.join(path)}: not read by the catalog"
            continue
        node = params
        for key in path[:-1]:
            assert isinstance(node, dict) and key in node, f"{'.'.join(path)}: not a key of the gpu profile"
            node = node[key]
        assert path[-1] in node, f"{'.'.join(path)}: not a key of the gpu profile"
        assert path[-1] in SIZE_KEYS | LOCATION_KEYS, f"{'.'.join(path)} is neither a size nor a location"
        assert (path[-1] in LOCATION_KEYS) == (path in map(tuple, _leaves(locations("m", "h", "g", "c", "u"))))
    assert catalog.count("hub_root: ${runtime_params:hub_root,null}") == catalog.count("hf_source.HF")


DRIVER = """
import json, sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
project = Path.cwd()
bootstrap_project(project)
with KedroSession.create(project_path=project, env="gpu", runtime_params=json.loads(sys.argv[1])) as session:
    session.run()
"""


def _swe_rows(mirror: Path) -> dict[str, list[dict]]:
    """The SWE fixtures' raw rows, their base commits replaced by the mirror's (commits cannot be forged)."""
    from hub_mirror import fixture_rows
    from swe_git import mirror_for_tasks

    from nemotron_cascade.data import sources

    names = [n for n, s in {**sources.SOURCES, **sources.BENCHMARKS}.items() if s.domain == "swe"]
    raw = {n: fixture_rows(n) for n in names}
    tasks = [t for n in names for t in sources.map_rows(n, raw[n])[0]]
    commits = mirror_for_tasks(tasks, mirror)
    return {n: [{**r, "base_commit": commits[r["instance_id"]]} if "base_commit" in r and r.get("instance_id")
                in commits else r for r in rows] for n, rows in raw.items()}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, make_project):
    from hub_mirror import build_mirror
    from real_model import save_qwen3_base

    from nemotron_cascade import models
    from nemotron_cascade.generation.serve import make_server

    tmp = tmp_path_factory.mktemp("gpu-smoke")
    project = make_project(tmp / "project")
    model = save_qwen3_base(tmp / "models" / "Qwen3-0.6B-Base")
    hub = build_mirror(tmp / "hub", rows=_swe_rows(tmp / "swe_mirror"))
    server = make_server(models.load_model(str(model)), models.load_tokenizer(str(model)), "local")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    overrides = _merge(SIZES, locations(str(model), str(hub), str(tmp / "swe_mirror"), str(tmp / "swe_cache"),
                                        server.url))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("NC_TEACHER_")},
           "KEDRO_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(tmp / "hf"), "HF_DATASETS_CACHE": str(tmp / "hf" / "datasets"), "COLUMNS": "2000",
           "OMP_NUM_THREADS": "2", "CPU_VLLM_TRACE": str(tmp / "vllm.trace"),
           "PYTHONPATH": os.pathsep.join([str(TESTS / "cpu_vllm"), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(overrides)], cwd=project, env=env,
                              capture_output=True, text=True, timeout=1500)
    finally:
        server.shutdown()
    (tmp / "run.log").write_text(proc.stdout + proc.stderr)
    keep = os.environ.get("NC_SMOKE_KEEP")  # a folder to keep the run's reports and log in
    if keep:
        import shutil

        shutil.copytree(project / "data" / "08_reporting", Path(keep) / "08_reporting", dirs_exist_ok=True)
        shutil.copy(tmp / "run.log", Path(keep) / "run.log")
    return project, proc, tmp


@pytest.mark.slow
def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_gpu_profile_smoke_runs_the_whole_cascade(smoke_run):
    project, proc, tmp = smoke_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    data = project / "data"
    matrix = (data / "08_reporting" / "cascade_matrix.csv").read_text().splitlines()
    stages = [line.split(",")[0] for line in matrix[1:]]
    assert stages == ["base", "sft_stage1", "sft", "rlhf", "if_rl", "math_rl", "code_rl", "swe_rl"], matrix
    for stage in ("base", "sft.stage1", "sft.stage2", "rlhf", "if_rl", "math_rl", "code_rl", "swe_rl"):
        assert (data / "08_reporting" / "eval" / f"{stage}.metrics.json").exists(), stage
    for stage in CASCADE_RL:  # every RL stage trained (its history) on prompts of its own domain
        assert (data / "07_model_output" / stage / "train_history.json").exists(), stage
    rl = {r["domain"] for r in _jsonl(data / "03_primary" / "rl_prompts.jsonl")}
    assert {"general", "instruction_following", "math", "code", "swe"} <= rl
    assert all(not r["source"].startswith("ifeval") for r in _jsonl(data / "03_primary" / "rl_prompts.jsonl"))


@pytest.mark.slow
def test_gpu_profile_smoke_reads_real_format_data_and_model(smoke_run):
    project, proc, tmp = smoke_run
    assert proc.returncode == 0
    data = project / "data"
    swe = _jsonl(data / "02_intermediate" / "tasks" / "swe_localised.jsonl")
    assert swe and all(r.get("checkout") and r["file"] in r["repo"] for r in swe if r.get("source"))  # from git
    pairs = _jsonl(data / "03_primary" / "preference_pairs.jsonl")
    assert pairs and all(p["source_id"].startswith("helpsteer3-") for p in pairs)  # human preferences
    samples = _jsonl(data / "04_feature" / "teacher_samples.jsonl")
    assert {s["domain"] for s in samples} >= {"math", "code", "general"}
    assert not [r for r in _jsonl(data / "01_raw" / "tasks" / "math.jsonl") if not r.get("source")]  # no world
    trace = (tmp / "vllm.trace").read_text().splitlines()
    # an engine per RL stage, per evaluation (base, two SFT stages, five RL stages) and for the SWE guesses
    assert sum(line.startswith("LLM ") for line in trace) >= len(CASCADE_RL) + 8 + 1
    assert sum(line.startswith("apply_model") for line in trace) >= len(CASCADE_RL)  # synced after updates
    card = (data / "08_reporting" / "data_card.md").read_text()
    assert "quarantine" in card.lower()
