"""The generation interface shared by rollouts, teachers, judges and evaluation.

A backend turns rendered prompts into completions: ``transformers`` (:mod:`.hf`, HF ``generate``
with the KV cache, the embedded default). Teachers for data curation (:mod:`.teachers`: ``oracle``,
``transformers``, ``openai`` over HTTP, ``vllm`` offline) answer task rows through the same
sampling parameters; RL rollouts on vLLM: :mod:`.vllm_engine` (not run yet: docs/scale_out.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: greedy when ``temperature`` is 0; ``n`` samples per prompt.

    ``logprobs`` (vLLM's convention): when set, every generated token comes with the log-probs of
    the ``logprobs`` most likely token ids *and* of the sampled one. They are the model's raw
    log-softmax (vLLM's default ``logprobs_mode="raw_logprobs"``): before temperature and top-p, so
    they are what a trainer recomputes and what a judge reads, whatever the sampling settings.
    ``None`` (default) computes nothing extra.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    logprobs: int | None = None


@dataclass
class Completion:
    """One generated continuation; ``finished`` is False when it hit ``max_new_tokens``.

    ``logprobs``: with ``SamplingParams.logprobs`` set, one ``{token_id: log_prob}`` per entry of
    ``token_ids`` (top ids plus the sampled one, raw log-softmax); otherwise ``None``.
    """

    text: str
    token_ids: list[int]
    finished: bool
    logprobs: list[dict[int, float]] | None = None


def logprob_entries(tokens: list[list[int]], top_ids: list, top_values: list, chosen: list
                    ) -> list[list[dict[int, float]]]:
    """Per row and step, ``{token_id: log_prob}`` of the top ids plus the generated token (vLLM's
    convention): ``tokens[r][t]`` generated, ``top_ids`` / ``top_values`` ``[r][t][k]`` and ``chosen``
    ``[r][t]`` (the generated token's log-prob) as nested lists."""
    rows = []
    for r, row in enumerate(tokens):
        steps = []
        for t, token in enumerate(row):
            entry = dict(zip(top_ids[r][t], top_values[r][t]))
            entry.setdefault(token, chosen[r][t])
            steps.append(entry)
        rows.append(steps)
    return rows


class Generator(Protocol):
    """Anything that completes prompts: ``generate(prompts, params) -> [[Completion] * n] * len``."""

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]: ...
