"""Fake objects shaped like vLLM's (``vllm.LLM``, its outputs and ``SamplingParams``) for the
tests of the vLLM rollout engine and of GRPO with ``rollout_engine: vllm`` (vLLM does not run here).
``FakeLLM`` records every call it gets; subclasses change what ``generate`` answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from vllm_outputs import CompletionOutput, Logprob, RequestOutput  # tests/

FakeLogprob, FakeCompletionOutput, FakeRequestOutput = Logprob, CompletionOutput, RequestOutput


class FakeSamplingParams:  # vllm.SamplingParams
    def __init__(self, **kwargs):
        # what vLLM's own __post_init__ refuses (vllm/sampling_params.py _verify_greedy_sampling)
        if kwargs.get("temperature", 1.0) < 1e-5 and kwargs.get("n", 1) > 1:
            raise ValueError(f"n must be 1 when using greedy sampling, got {kwargs['n']}.")
        self.kwargs = kwargs


class FakeTokenizer:
    def __call__(self, text, add_special_tokens=True):
        assert add_special_tokens is False
        return type("Enc", (), {"input_ids": [ord(c) for c in text]})()


class FakeModel:
    def __init__(self):
        self.loaded = []

    def load_weights(self, weights):  # copies: a trainer's tensors change in place after a sync
        self.loaded.append([(k, v.clone() if hasattr(v, "clone") else v) for k, v in weights])


@dataclass
class FakeLLM:
    """Records the calls an engine gets; ``generate`` answers 'ab' + eos or a cut 'abc'."""

    calls: list = field(default_factory=list)
    model: FakeModel = field(default_factory=FakeModel)
    eos: int = 0

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append(("generate", len(prompts)))
        self.last = (prompts, sampling_params)
        outs = []
        for i, (p, sp) in enumerate(zip(prompts, sampling_params)):
            k = sp.kwargs.get("logprobs")
            comps = []
            for j in reversed(range(sp.kwargs["n"])):  # out of index order on purpose
                cut = j % 2 == 1
                ids = [97, 98, 99] if cut else [97, 98, self.eos]
                lps = None if k is None else [{t: FakeLogprob(-0.5, 1), 5: FakeLogprob(-1.5, 2)} for t in ids]
                comps.append(FakeCompletionOutput(j, "abc" if cut else "ab", ids, None, lps,
                                                  "length" if cut else "stop"))
            outs.append(FakeRequestOutput(str(i), p["prompt_token_ids"], comps))
        return outs

    def sleep(self, level=1):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags) if tags else None))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))

    def apply_model(self, func):
        self.calls.append(("apply_model",))
        return [func(self.model)]
