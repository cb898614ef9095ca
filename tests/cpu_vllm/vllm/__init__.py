"""A CPU stand-in for vLLM's offline API (``vllm.LLM``, ``vllm.SamplingParams``), for running the
gpu profile's own pipelines on a machine without vLLM (the gpu-profile smoke test puts this folder
first on ``PYTHONPATH``). It generates with ``transformers`` on the CPU.

It refuses what vLLM refuses, with vLLM's messages, read from vLLM's source
(``vllm/sampling_params.py`` ``_verify_args`` / ``_verify_greedy_sampling``,
``vllm/v1/serial_utils.py`` ``MsgpackEncoder.enc_hook``, the engine's length and logprob checks):

* ``SamplingParams``: greedy (temperature < 1e-5) with ``n > 1``; temperature outside [0, 2];
  ``top_p`` outside (0, 1]; ``max_tokens < 1``; ``logprobs < 0``; non-integer ``stop_token_ids``;
  an unknown keyword (a ``msgspec.Struct``'s constructor refuses it);
* ``LLM(...)``: an unknown engine argument (``EngineArgs`` is a dataclass), ``tensor_parallel_size``
  other than 1 here, ``gpu_memory_utilization`` outside (0, 1], ``max_model_len`` past the model's
  context (max_position_embeddings times the YaRN factor, as vLLM derives it);
* ``generate``: a prompt as long as ``max_model_len`` or longer; ``logprobs`` above the engine's
  ``max_logprobs``; generating while asleep (the weights are gone at level 2);
* ``sleep`` without ``enable_sleep_mode``;
* ``apply_model(fn)`` across V1's engine-process boundary (the default, ``VLLM_ENABLE_V1_MULTIPROCESSING``
  unset or 1): the RPC serialiser refuses a function or arbitrary object unless
  ``VLLM_ALLOW_INSECURE_SERIALIZATION=1``, and then it is pickled (a copy crosses, not the object);
  in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) ``fn`` gets the model directly;
* ``model.load_weights``: a name the model does not have (``KeyError``, as vLLM's loaders index
  ``params_dict[name]``).

``CPU_VLLM_TRACE``: a file to which every engine built and every ``apply_model`` call appends a
line (the smoke test checks that the rollouts and weight syncs went through here).

Completions follow vLLM's conventions: the stop token is kept in ``token_ids`` and dropped from
``text``; ``finish_reason`` is ``"stop"`` or ``"length"``; generation stops on the generation
config's eos and on ``stop_token_ids``; ``logprobs`` are the raw log-softmax of the top ids plus the
sampled one.
"""

from __future__ import annotations

import math
import os
import pickle
from types import SimpleNamespace
from typing import Any

from vllm_outputs import CompletionOutput, Logprob, RequestOutput  # tests/ (on PYTHONPATH)

__version__ = "0.0.0+cpu-stand-in"
_SAMPLING_EPS = 1e-5
_ENGINE_ARGS = {"model", "dtype", "seed", "tensor_parallel_size", "gpu_memory_utilization", "max_model_len",
                "enable_sleep_mode", "max_logprobs", "logprobs_mode", "enforce_eager", "hf_overrides",
                "enable_prefix_caching", "distributed_executor_backend", "trust_remote_code", "tokenizer"}


class SamplingParams:
    """``vllm.SamplingParams`` with the checks of its ``__post_init__``."""

    _FIELDS = {"n": 1, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_tokens": 16, "seed": None,
               "logprobs": None, "stop_token_ids": None, "ignore_eos": False, "skip_special_tokens": True}

    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(self._FIELDS)
        if unknown:
            raise TypeError(f"Unexpected keyword argument {sorted(unknown)[0]!r}")
        for name, default in self._FIELDS.items():
            setattr(self, name, kwargs.get(name, default))
        self.stop_token_ids = list(dict.fromkeys(self.stop_token_ids or []))
        self._verify_args()
        if self.temperature < _SAMPLING_EPS:
            self.top_p, self.top_k = 1.0, 0
            if self.n > 1:
                raise ValueError(f"n must be 1 when using greedy sampling, got {self.n}.")

    def _verify_args(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}.")
        if not math.isfinite(self.temperature) or not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if self.logprobs is not None and self.logprobs != -1 and self.logprobs < 0:
            raise ValueError(f"logprobs must be non-negative or -1, got {self.logprobs}.")
        if not all(isinstance(t, int) for t in self.stop_token_ids):
            raise ValueError(f"stop_token_ids must contain only integers, got {self.stop_token_ids}.")


class _Model:
    """What ``apply_model`` hands a function: a model with vLLM's ``load_weights`` over HF names."""

    def __init__(self, hf_model):
        self.hf_model = hf_model

    def load_weights(self, weights) -> set[str]:
        import torch

        params = dict(self.hf_model.named_parameters())
        loaded = set()
        for name, tensor in weights:
            if name not in params:
                raise KeyError(name)
            with torch.no_grad():
                params[name].copy_(tensor.to(params[name].dtype))
            loaded.add(name)
        return loaded


def _serialise(obj: Any) -> Any:
    """What V1's RPC does to an ``apply_model`` payload on its way to the engine process."""
    if os.environ.get("VLLM_ALLOW_INSECURE_SERIALIZATION") != "1":
        raise TypeError(f"Object of type {type(obj)} is not serializable"
                        "Set VLLM_ALLOW_INSECURE_SERIALIZATION=1 to allow fallback to pickle-based serialization.")
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


class LLM:
    """``vllm.LLM`` on the CPU (``transformers`` underneath)."""

    def __init__(self, model: str, **kwargs):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        unknown = set(kwargs) - _ENGINE_ARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument {sorted(unknown)[0]!r}")
        if kwargs.get("tensor_parallel_size", 1) != 1:
            raise ValueError("this CPU stand-in runs tensor_parallel_size 1 only")
        if not 0.0 < float(kwargs.get("gpu_memory_utilization", 0.9)) <= 1.0:
            raise ValueError(f"GPU memory utilization must be within (0, 1]. Got "
                             f"{kwargs['gpu_memory_utilization']}.")
        dtype = kwargs.get("dtype", "auto")
        self._model = AutoModelForCausalLM.from_pretrained(
            model, dtype=getattr(torch, dtype) if dtype not in (None, "auto") else "auto").eval()
        self._tokenizer = AutoTokenizer.from_pretrained(kwargs.get("tokenizer") or model)
        config = self._model.config
        self.max_model_len = _max_model_len(config, kwargs.get("max_model_len"))
        self.max_logprobs = int(kwargs.get("max_logprobs", 20))
        self.sleep_mode, self.level = bool(kwargs.get("enable_sleep_mode", False)), 0
        self.seed = kwargs.get("seed", 0)
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(hf_config=config))
        _trace(f"LLM {model} max_model_len={self.max_model_len}")

    def get_tokenizer(self):
        return self._tokenizer

    def generate(self, prompts, sampling_params=None, use_tqdm: bool = True) -> list[RequestOutput]:
        if self.level:
            raise RuntimeError("the engine is asleep: call wake_up() before generate()")
        prompts = prompts if isinstance(prompts, list) else [prompts]
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params or SamplingParams()]
        if len(params) == 1 and len(prompts) > 1:
            params = params * len(prompts)
        if len(params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        return [self._request(str(i), p["prompt_token_ids"], sp) for i, (p, sp) in enumerate(zip(prompts, params))]

    def _request(self, request_id: str, prompt_ids: list[int], sp: SamplingParams) -> RequestOutput:
        if len(prompt_ids) >= self.max_model_len:
            raise ValueError(f"The decoder prompt (length {len(prompt_ids)}) is longer than the maximum model "
                             f"length of {self.max_model_len}. Make sure that `max_model_len` is no smaller "
                             "than the number of text tokens.")
        if sp.logprobs is not None and sp.logprobs > self.max_logprobs:
            raise ValueError(f"Requested sample logprobs of {sp.logprobs}, which is greater than max allowed: "
                             f"{self.max_logprobs}")
        budget = min(sp.max_tokens or self.max_model_len, self.max_model_len - len(prompt_ids))
        outputs = [self._sample(prompt_ids, sp, budget, j) for j in range(sp.n)]
        return RequestOutput(request_id, list(prompt_ids), outputs)

    def _stops(self, sp: SamplingParams) -> set[int]:
        eos = getattr(self._model.generation_config, "eos_token_id", None)
        eos = [] if sp.ignore_eos or eos is None else (eos if isinstance(eos, list) else [eos])
        return set(eos) | set(sp.stop_token_ids)

    def _sample(self, prompt_ids: list[int], sp: SamplingParams, budget: int, index: int) -> CompletionOutput:
        import torch

        gen = torch.Generator().manual_seed(int(sp.seed if sp.seed is not None else self.seed) * 1000 + index)
        ids, stops, lps, reason, new = list(prompt_ids), self._stops(sp), [], "length", []
        with torch.no_grad():
            for _ in range(budget):  # a full forward per token: slow, simple, exact
                logits = self._model(input_ids=torch.tensor([ids])).logits
                logp = torch.log_softmax(logits[0, -1].float(), dim=-1)
                token = _pick(logp, sp, gen)
                if sp.logprobs is not None:
                    top = logp.topk(min(max(sp.logprobs, 0), logp.numel()))
                    entry = {int(t): Logprob(float(v), r + 1) for r, (v, t) in enumerate(zip(top.values, top.indices))}
                    entry.setdefault(token, Logprob(float(logp[token])))
                    lps.append(entry)
                ids.append(token)
                new.append(token)
                if token in stops:
                    reason = "stop"
                    break
        text = self._tokenizer.decode(new, skip_special_tokens=sp.skip_special_tokens)
        return CompletionOutput(index, text, new, None, lps if sp.logprobs is not None else None, reason)

    def sleep(self, level: int = 1) -> None:
        if not self.sleep_mode:
            raise ValueError("Sleep mode is not enabled. Please set enable_sleep_mode=True.")
        self.level = level

    def wake_up(self, tags: list[str] | None = None) -> None:
        unknown = set(tags or []) - {"weights", "kv_cache"}
        if unknown:
            raise ValueError(f"unknown wake_up tags {sorted(unknown)}")
        if tags is None or "kv_cache" in tags:
            self.level = 0

    def reset_prefix_cache(self) -> bool:
        return True

    def apply_model(self, func) -> list[Any]:
        if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") != "0":
            func = _serialise(func)  # crosses into the engine process
        result = [func(_Model(self._model))]
        _trace(f"apply_model {type(func).__name__}")
        return result


def _trace(line: str) -> None:
    path = os.environ.get("CPU_VLLM_TRACE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _max_model_len(config, asked: int | None) -> int:
    rope = getattr(config, "rope_parameters", None) or {}
    derived = int(config.max_position_embeddings)
    if rope.get("rope_type") == "yarn" and rope.get("factor"):
        derived = int(int(rope.get("original_max_position_embeddings") or derived) * float(rope["factor"]))
    if asked is None:
        return derived
    if int(asked) > derived:
        raise ValueError(f"User-specified max_model_len ({asked}) is greater than the derived max_model_len "
                         f"(max_position_embeddings={derived} or model_max_length=None in model's config.json).")
    return int(asked)


def _pick(logp, sp: SamplingParams, gen) -> int:
    import torch

    if sp.temperature < _SAMPLING_EPS:
        return int(logp.argmax())
    probs = torch.softmax(logp / sp.temperature, dim=-1)
    if sp.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < sp.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=gen))
