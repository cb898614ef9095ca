"""Shared fixtures: a tiny tokenizer and model trained on a slice of the embedded world."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
# test helpers (ds_parity, vllm_fakes) importable by name in launched ranks and subprocesses too
_TESTS = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_TESTS, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session")
def world_samples():
    from nemotron_cascade.data import sft, world

    rows = [r for d in world.DOMAINS for r in world.generate_tasks(d, "sft", 30, 0)]
    return sft.teacher_samples(rows, 0.7, 0.2, 0, world.oracle_response)


@pytest.fixture(scope="session")
def tokenizer(world_samples):
    from nemotron_cascade import chat, models

    return models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in world_samples), 400)


@pytest.fixture()
def tiny_model(tokenizer):
    from nemotron_cascade import models

    return models.build_tiny_model(tokenizer, models.TinyModelConfig(
        hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0))


@pytest.fixture(scope="session")
def make_project():
    """A factory of bare Kedro project copies for end-to-end runs: ``pyproject.toml``, ``conf/``
    (no credentials), an empty ``data/`` and an empty ``src/`` (kedro wants the source dir; the
    package itself is installed). ``make_project(dst)`` creates ``dst`` and returns it."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def make(dst: Path) -> Path:
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "pyproject.toml", dst)
        shutil.copytree(root / "conf", dst / "conf", ignore=shutil.ignore_patterns("credentials*"))
        (dst / "data").mkdir()
        (dst / "src").mkdir()
        return dst
    return make
