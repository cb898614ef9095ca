"""The generation engine a profile names, for whoever generates from a policy in memory: GRPO
rollouts (:func:`nemotron_cascade.rl.rollout.build_generator`), evaluation and the SWE stage's
localisation guesses. ``hf``: HF ``generate`` on the model itself; ``vllm``: an offline vLLM engine
on a copy of the model written to a temporary directory (the gpu profile: vLLM on GPUs);
``embedded``: the plain-torch decoder of :mod:`.embedded` over the model's live weights (the tiny
Qwen3 policy on CPU; not the default yet: switching moves the matrix, a measured step of its own)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping

ENGINES = ("hf", "vllm", "embedded")


def make_generator(engine: str, model, tokenizer, batch_size: int = 64, vllm: Mapping | None = None,
                   seed: int = 0, device: str | None = None):
    """A :class:`~nemotron_cascade.generation.base.Generator` over ``model`` on ``engine``.

    ``vllm``: keyword arguments of ``VLLMGenerator.from_pretrained`` (dtype, max_model_len,
    sleep_level, ...); its engine holds its own copy of the weights (a trainer syncs them).
    ``device`` (a ``device`` setting): where an in-process engine's model is placed first; vLLM
    builds its own copy on the GPU, so the model stays where it is (None: never placed here, as in
    a training loop, which placed it already).
    """
    if engine not in ENGINES:
        raise ValueError(f"generation engine must be one of {ENGINES}, got {engine!r}")
    if device is not None and engine != "vllm":
        from nemotron_cascade.training import placement

        model = placement.place(model, placement.resolve_device(device))
    if engine == "hf":
        from nemotron_cascade.generation.hf import HFGenerator

        return HFGenerator(model, tokenizer, batch_size=batch_size)
    if engine == "embedded":
        from nemotron_cascade.generation.embedded import build_embedded

        return build_embedded(model, tokenizer, batch_size)
    from nemotron_cascade.generation.vllm_engine import VLLMGenerator

    with tempfile.TemporaryDirectory(prefix="nc-vllm-") as path:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        return VLLMGenerator.from_pretrained(path, **{"seed": seed, **dict(vllm or {})})
