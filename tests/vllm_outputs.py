"""vLLM's output types (``vllm.logprobs.Logprob``, ``vllm.outputs.CompletionOutput`` and
``RequestOutput``), field for field, shared by the tests' fakes (tests/vllm_fakes.py) and the CPU
stand-in for vLLM (tests/cpu_vllm)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Logprob:  # vllm.logprobs.Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:  # vllm.outputs.CompletionOutput
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = True
