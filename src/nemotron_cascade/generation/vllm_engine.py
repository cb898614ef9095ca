"""vLLM rollout engine: the :class:`~.base.Generator` protocol on an offline ``vllm.LLM``.

**Not run yet.** vLLM's wheels are CUDA builds and none of this project's machines has run it; the
module is written against vLLM's documented V1 offline API (docs.vllm.ai, 0.10.2 and later: the
``LLM`` class, ``SamplingParams``, ``RequestOutput``, sleep mode, ``LLM.apply_model``) and its logic
lives in pure functions unit-tested with fake objects shaped like vLLM's
(``tests/generation/test_vllm_engine.py``). Install with ``pip install '.[gpu]'``.

Conventions, matched to :class:`~.hf.HFGenerator`:

* prompts go in as token ids of our rendered text, no special tokens added;
* ``SamplingParams.temperature == 0`` is greedy; sampling is pure temperature + ``top_p``
  (vLLM's ``top_k`` stays at its "disabled" default);
* a completion is ``finished`` when vLLM stopped on eos / a stop token (``finish_reason == "stop"``),
  not when it hit ``max_tokens`` (``"length"``); the eos token is kept in ``token_ids`` (vLLM keeps
  it, HFGenerator keeps it) and dropped from ``text`` (``skip_special_tokens``);
* with ``SamplingParams.logprobs = k`` every generated token comes with ``{token_id: log_prob}`` of
  the top-``k`` ids plus the sampled one — vLLM's own convention — and they are the model's raw
  log-softmax: the engine is built with ``logprobs_mode="raw_logprobs"`` (vLLM's default, set
  explicitly). vLLM refuses ``k`` above the engine's ``max_logprobs`` (default 20): the SWE judge
  (:mod:`nemotron_cascade.rewards.swe_judge`) asks for the whole vocabulary of a small model, so
  build the engine with ``max_logprobs`` at least that (``-1``: no limit) to judge with it;
* ``seed``: one seed per request, ``params.seed + prompt index``, so a call is reproducible and two
  equal prompts in one call still get different samples (HF draws them from one seeded stream).

Weight sync for RL (one engine colocated with the trainer on the same GPUs):
:meth:`VLLMGenerator.sync_weights` takes the trainer's named parameters (a DeepSpeed/DDP
``module.`` prefix is stripped, see :func:`vllm_weight_names`), wakes the engine's weights if it
sleeps, calls the model's ``load_weights`` inside each worker (``LLM.apply_model``; in-process
with ``VLLM_ENABLE_V1_MULTIPROCESSING=0``, pickled to the workers otherwise, which needs
``VLLM_ALLOW_INSECURE_SERIALIZATION=1``), wakes the KV cache and resets the prefix cache (cached
prefixes were computed with the old weights). With ``sleep_level`` set, the engine sleeps after each
:meth:`~VLLMGenerator.generate` so that the optimiser step has the GPU memory; level 2 discards the
weights, so a generate before the next sync is refused rather than sampling from garbage. Under
ZeRO-3 the trainer must gather full parameters first (``deepspeed.zero.GatheredParameters``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from nemotron_cascade.generation.base import Completion, SamplingParams

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install '.[gpu]'"
# wrappers whose prefixes a trainer's state dict may carry: DeepSpeed/DDP, torch.compile, FSDP
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_fsdp_wrapped_module.")
# buffers HF state dicts may hold that vLLM computes itself
SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)


def import_vllm():
    """The ``vllm`` module, or an ImportError saying how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"the vllm rollout engine needs vLLM, which is not installed: {INSTALL_HINT} "
                          "(CUDA GPUs only; the transformers backend runs anywhere)") from e
    return vllm


# ---------------------------------------------------------------------------- requests
def sampling_kwargs(params: SamplingParams, seed: int | None = None, stop_token_ids: Sequence[int] = ()) -> dict:
    """Keyword arguments of ``vllm.SamplingParams`` for our :class:`SamplingParams`.

    ``seed`` overrides ``params.seed`` (per-request seeds). Greedy (temperature 0) sends
    ``temperature=0`` and ``top_p=1``, which vLLM treats as argmax. ``stop_token_ids``: ids to stop
    on besides the eos of the checkpoint's generation config (the chat template's end of turn).
    """
    if params.n < 1 or params.max_new_tokens < 1:
        raise ValueError(f"SamplingParams needs n >= 1 and max_new_tokens >= 1, got {params.n}, "
                         f"{params.max_new_tokens}")
    if params.logprobs is not None and params.logprobs < 0:
        raise ValueError(f"SamplingParams.logprobs must be >= 0 or None, got {params.logprobs}")
    greedy = params.temperature <= 0
    # vLLM refuses greedy sampling with n > 1 (SamplingParams._verify_greedy_sampling): its n
    # samples would all be the argmax path, so one is asked for and repeated (parse_outputs)
    kwargs = {"n": 1 if greedy else params.n, "temperature": 0.0 if greedy else float(params.temperature),
              "top_p": 1.0 if greedy else float(params.top_p), "max_tokens": params.max_new_tokens,
              "seed": params.seed if seed is None else seed}
    if params.logprobs is not None:
        kwargs["logprobs"] = params.logprobs
    if stop_token_ids:
        kwargs["stop_token_ids"] = [int(t) for t in stop_token_ids]
    return kwargs


def build_requests(prompts: Sequence[str], params: SamplingParams, encode: Callable[[str], list[int]],
                   sampling_cls: Callable[..., Any], stop_token_ids: Sequence[int] = ()) -> tuple[list[dict], list]:
    """``(prompts, sampling_params)`` for ``llm.generate``: token-id prompts (``TokensPrompt`` dicts)
    and one ``sampling_cls(**kwargs)`` per prompt, seeded ``params.seed + i``, stopping on
    ``stop_token_ids`` too."""
    requests = [{"prompt_token_ids": list(encode(p))} for p in prompts]
    sampling = [sampling_cls(**sampling_kwargs(params, params.seed + i, stop_token_ids)) for i in range(len(prompts))]
    return requests, sampling


# ---------------------------------------------------------------------------- outputs
def logprob_dicts(step_logprobs: Sequence[Any] | None) -> list[dict[int, float]] | None:
    """vLLM's per-token ``{token_id: Logprob}`` (``Logprob.logprob``) as ``{token_id: float}``."""
    if step_logprobs is None:
        return None
    return [{int(t): float(getattr(lp, "logprob", lp)) for t, lp in step.items()} for step in step_logprobs]


def parse_completion(output: Any, want_logprobs: bool) -> Completion:
    """One vLLM ``CompletionOutput`` (``text``, ``token_ids``, ``logprobs``, ``finish_reason``)."""
    reason = output.finish_reason
    if reason not in ("stop", "length"):
        raise RuntimeError(f"vllm completion ended with finish_reason={reason!r} (aborted?)")
    ids = [int(t) for t in output.token_ids]
    lps = logprob_dicts(output.logprobs) if want_logprobs else None
    if want_logprobs:
        if lps is None or len(lps) != len(ids):
            raise RuntimeError(f"vllm returned {0 if lps is None else len(lps)} log-prob steps for "
                               f"{len(ids)} tokens")
        for step, (token, entry) in enumerate(zip(ids, lps)):
            if token not in entry:
                raise RuntimeError(f"vllm log-probs of step {step} lack the sampled token {token}")
    return Completion(text=output.text, token_ids=ids, finished=reason == "stop", logprobs=lps)


def parse_outputs(outputs: Sequence[Any], params: SamplingParams, n_prompts: int) -> list[list[Completion]]:
    """``llm.generate``'s ``RequestOutput`` list (prompt order) as ``[[Completion] * n] * n_prompts``.

    ``CompletionOutput`` s are put in ``index`` order.
    """
    if len(outputs) != n_prompts:
        raise RuntimeError(f"vllm returned {len(outputs)} outputs for {n_prompts} prompts")
    result = []
    asked = 1 if params.temperature <= 0 else params.n  # greedy: one sample, repeated n times
    for out in outputs:
        completions = sorted(out.outputs, key=lambda o: getattr(o, "index", 0))
        if len(completions) != asked:
            raise RuntimeError(f"vllm returned {len(completions)} completions for n={asked}")
        parsed = [parse_completion(o, params.logprobs is not None) for o in completions]
        result.append(parsed if asked == params.n else [replace(parsed[0]) for _ in range(params.n)])
    return result


# ---------------------------------------------------------------------------- weights
def vllm_weight_names(named_tensors: Iterable[tuple[str, Any]], tied_embeddings: bool = False
                      ) -> Iterator[tuple[str, Any]]:
    """A trainer's ``(name, tensor)`` pairs renamed for vLLM's ``model.load_weights``.

    vLLM's loaders take HF checkpoint names (``model.layers.0.self_attn.q_proj.weight``) and fuse
    q/k/v and gate/up themselves; a DeepSpeed/DDP engine (``module.``), ``torch.compile``
    (``_orig_mod.``) or FSDP wrapper prefix is stripped, wherever it sits; rotary ``inv_freq`` buffers
    are dropped, and ``lm_head.weight`` too when the embeddings are tied (vLLM shares them).
    """
    for name, tensor in named_tensors:
        for prefix in WRAPPER_PREFIXES:
            name = name.replace(prefix, "")  # prefixes end with a dot: no partial-word matches
        if name.endswith(SKIPPED_SUFFIXES) or (tied_embeddings and name == "lm_head.weight"):
            continue
        yield name, tensor


class _LoadWeights:
    """Picklable ``fn(model)`` for ``LLM.apply_model``: ``model.load_weights(weights)``."""

    def __init__(self, weights: list[tuple[str, Any]]):
        self.weights = weights

    def __call__(self, model):
        model.load_weights(self.weights)


def load_weights(llm: Any, weights: list[tuple[str, Any]]) -> None:
    """``load_weights`` on the model inside every worker: ``LLM.apply_model`` (V1), else the V0
    in-process path ``llm.llm_engine.model_executor.driver_worker.model_runner.model``."""
    if hasattr(llm, "apply_model"):
        llm.apply_model(_LoadWeights(weights))
        return
    llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights(weights)


# ---------------------------------------------------------------------------- the engine
def _end_of_turn(tokenizer: Any) -> list[int]:
    """The chat template's end-of-turn id and the tokenizer's eos (vLLM adds its generation config's
    eos itself): a Qwen3 Base checkpoint's generation config names ``<|endoftext|>`` only."""
    if not getattr(tokenizer, "chat_template", None):
        return []
    from nemotron_cascade.models import stop_token_ids

    return stop_token_ids(tokenizer)


class VLLMGenerator:
    """Generate with an offline ``vllm.LLM``; optionally sleep between rollouts and take new weights.

    Build with :meth:`from_pretrained` (imports vLLM) or give an ``llm`` (any object with vLLM's
    ``generate`` / ``sleep`` / ``wake_up`` / ``reset_prefix_cache`` / ``apply_model``) and the
    ``sampling_cls`` to build requests with (``vllm.SamplingParams``).
    """

    def __init__(self, llm: Any, tokenizer: Any = None, sleep_level: int = 0,
                 sampling_cls: Callable[..., Any] | None = None, tied_embeddings: bool = False):
        if sleep_level not in (0, 1, 2):
            raise ValueError(f"sleep_level must be 0 (never sleep), 1 or 2, got {sleep_level}")
        self.llm, self.sleep_level, self.tied_embeddings = llm, sleep_level, tied_embeddings
        self.tokenizer = tokenizer if tokenizer is not None else llm.get_tokenizer()
        self.stop_ids = _end_of_turn(self.tokenizer)
        self.sampling_cls = sampling_cls or import_vllm().SamplingParams
        self.asleep = False   # level 1 or 2 sleep in effect
        self.stale = False    # weights discarded by a level-2 sleep and not reloaded yet
        self.version = 0      # weight syncs so far

    @classmethod
    def from_pretrained(cls, model_path: str, dtype: str = "bfloat16", seed: int = 0,
                        tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.5,
                        max_model_len: int | None = None, sleep_level: int = 0, max_logprobs: int = 20,
                        enforce_eager: bool = False, **llm_kwargs) -> VLLMGenerator:
        """A ``vllm.LLM`` on ``model_path`` (sleep mode enabled when ``sleep_level`` is set).

        ``gpu_memory_utilization`` defaults to 0.5: colocated with a trainer, vLLM must leave it room.
        """
        # The weight sync hands a loader to the model through LLM.apply_model. Across V1's engine
        # process that RPC payload is refused unless VLLM_ALLOW_INSECURE_SERIALIZATION=1 (and then
        # pickled: a copy of every tensor per sync). One engine colocated with the trainer runs its
        # engine core in this process instead (as TRL's colocate mode does), so the loader reaches
        # the model directly. Set VLLM_ENABLE_V1_MULTIPROCESSING=1 yourself to keep the process
        # boundary (then also VLLM_ALLOW_INSECURE_SERIALIZATION=1).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = import_vllm()
        llm = vllm.LLM(model=model_path, dtype=dtype, seed=seed, tensor_parallel_size=tensor_parallel_size,
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                       enable_sleep_mode=sleep_level > 0, max_logprobs=max_logprobs,
                       logprobs_mode="raw_logprobs", enforce_eager=enforce_eager, **llm_kwargs)
        tied = bool(getattr(llm.llm_engine.model_config.hf_config, "tie_word_embeddings", False)) \
            if hasattr(llm, "llm_engine") else False
        return cls(llm, sleep_level=sleep_level, sampling_cls=vllm.SamplingParams, tied_embeddings=tied)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def wake(self) -> None:
        if self.asleep:
            if self.stale:
                raise RuntimeError("vllm engine slept at level 2 (weights discarded): call sync_weights "
                                   "before generating")
            self.llm.wake_up()
            self.asleep = False

    def sleep(self) -> None:
        if self.sleep_level and not self.asleep:
            self.llm.sleep(level=self.sleep_level)
            self.asleep, self.stale = True, self.sleep_level == 2

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        """Complete every prompt ``params.n`` times; results in prompt order (then sleep, if set)."""
        if not prompts:
            return []
        requests, sampling = build_requests(prompts, params, self._encode, self.sampling_cls, self.stop_ids)
        self.wake()
        try:
            outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        finally:
            self.sleep()
        return parse_outputs(outputs, params, len(prompts))

    def sync_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> int:
        """Load the trainer's weights: wake the weights → ``load_weights`` → wake the KV cache →
        ``reset_prefix_cache``. Returns the number of tensors loaded."""
        weights = list(vllm_weight_names(named_tensors, self.tied_embeddings))
        if not weights:
            raise ValueError("sync_weights got no tensors")
        if self.asleep:
            self.llm.wake_up(tags=["weights"])   # weights only: the KV cache stays freed meanwhile
        load_weights(self.llm, weights)
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = self.stale = False
        self.llm.reset_prefix_cache()
        self.version += 1  # awake now: the next generate runs at once, then sleeps again
        return len(weights)
