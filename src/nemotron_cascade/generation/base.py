"""The generation interface shared by rollouts, teachers, judges and evaluation.

A backend turns rendered prompts into completions. Backends: ``transformers`` (HF ``generate``
with the KV cache, the embedded default), ``oracle`` (the embedded world's teacher, for data
curation); ``vllm`` and ``openai`` come with the scale-out and curation issues and implement the same
:class:`Generator` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: greedy when ``temperature`` is 0; ``n`` samples per prompt."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0


@dataclass
class Completion:
    """One generated continuation; ``finished`` is False when it hit ``max_new_tokens``."""

    text: str
    token_ids: list[int]
    finished: bool


class Generator(Protocol):
    """Anything that completes prompts: ``generate(prompts, params) -> [[Completion] * n] * len``."""

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]: ...
