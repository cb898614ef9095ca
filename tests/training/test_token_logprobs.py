"""Chunked LM head (training/token_logprobs.py): the same SFT loss and GRPO log-probs as the
unchunked path, for values and gradients, without a ``[positions, V]`` tensor larger than a chunk."""

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from transformers import (
    CohereConfig,
    CohereForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    GraniteConfig,
    GraniteForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from nemotron_cascade import models
from nemotron_cascade.config import config_from_params
from nemotron_cascade.rl.config import GRPOConfig
from nemotron_cascade.rl.update import sequence_logprobs
from nemotron_cascade.training import packing, sft, token_logprobs
from nemotron_cascade.training.sft import SFTConfig, token_loss

V = 101  # vocabulary: prime, unlike every other dimension of the tiny models (the memory probe keys on it)
TOL = 1e-5
COMMON = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
              intermediate_size=64, pad_token_id=0, eos_token_id=1, bos_token_id=None)


def qwen3():
    torch.manual_seed(0)
    return Qwen3ForCausalLM(Qwen3Config(**COMMON, head_dim=16, tie_word_embeddings=True))


def _grads(model):
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _close(a, b):
    return torch.allclose(a, b, rtol=TOL, atol=TOL)


# ------------------------------------------------------------------------------------------ SFT
def _packed_batch():
    """Two packed blocks of 24 tokens: prompt (-100) and assistant spans in ragged places, the
    second block holding two samples (its position ids restart at 0)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, V, (2, 24), generator=g)
    labels = ids.clone()
    labels[0, :6] = -100
    labels[1, :4] = -100
    labels[1, 11:15] = -100  # the second sample's prompt
    pos = torch.stack([torch.arange(24), torch.cat([torch.arange(11), torch.arange(13)])])
    return ids, labels, pos


def _sft(model, chunk, reduction):
    model.zero_grad(set_to_none=True)
    ids, labels, pos = _packed_batch()
    assert int((labels[:, 1:] != -100).sum()) == 34
    loss = token_loss(model, ids, labels, pos, reduction=reduction, chunk_tokens=chunk)
    loss.backward()
    return loss.detach(), _grads(model)


@pytest.mark.parametrize("chunk, reduction, reason", [
    (1, "mean", "one position per chunk: the most chunks"),
    (7, "mean", "7 does not divide the 34 label positions: a short last chunk"),
    (34, "sum", "exactly the label positions, the sum a DeepSpeed rank takes"),
    (10_000, "mean", "a chunk larger than the batch: one chunk"),
])
def test_sft_loss_and_gradients_equal_the_unchunked_path(chunk, reduction, reason):
    model = qwen3()
    loss_full, grad_full = _sft(model, None, reduction)
    loss_chunked, grad_chunked = _sft(model, chunk, reduction)
    assert _close(loss_full, loss_chunked), reason
    assert _close(grad_full, grad_chunked), reason


def test_sft_loss_without_label_positions_is_nan_like_the_unchunked_path():
    """A batch with every label masked: the unchunked mean is 0/0 = NaN (the fault guard skips the
    step), the sum 0; the chunked loss says the same and stays in the graph."""
    model = qwen3()
    ids, labels, pos = _packed_batch()
    labels[:] = -100
    for reduction, check in (("mean", torch.isnan), ("sum", lambda x: x == 0)):
        full = token_loss(model, ids, labels, pos, reduction=reduction)
        chunked = token_loss(model, ids, labels, pos, reduction=reduction, chunk_tokens=4)
        assert check(full) and check(chunked) and chunked.requires_grad, reduction


def test_sft_steps_are_the_same_with_the_chunked_head(world_samples, tokenizer):
    """Three SFT steps (AdamW): the same per-step losses and gradient norms; 5 divides nothing."""
    blocks, _ = packing.prepare_blocks(world_samples, tokenizer, 128)
    hist = {}
    for knob in (None, 5):
        cfg = sft.SFTConfig(lr=1e-2, max_steps=3, warmup_steps=1, batch_size=2, log_every=1, logits_chunk_tokens=knob)
        hist[knob] = sft.train_sft(models.build_tiny_model(tokenizer, models.TinyModelConfig(
            hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=0)), blocks, cfg)
    for key in ("loss", "grad_norm"):
        full, chunked = [h[key] for h in hist[None]], [h[key] for h in hist[5]]
        assert len(full) == 3 and all(abs(a - b) < TOL for a, b in zip(full, chunked)), (key, full, chunked)


# ----------------------------------------------------------------------------------------- GRPO
PROMPTS = [[5, 6, 7], [8, 9], [3, 4, 5, 6, 7]]
COMPLETIONS = [[10, 11], [12, 13, 14, 1], [20, 21, 22, 23, 24, 25, 1]]  # ragged: 2, 4, 7 tokens


def _grpo(model, chunk, prompts=PROMPTS, completions=COMPLETIONS):
    """Masked log-probs and entropy, and the gradient of a policy-gradient-like weighted sum."""
    model.zero_grad(set_to_none=True)
    lp, mask, ent = sequence_logprobs(model, prompts, completions, 0, chunk)
    weights = torch.linspace(-1.0, 1.0, lp.numel()).reshape(lp.shape)
    ((lp * mask * weights).sum() / mask.sum()).backward()
    return lp.detach() * mask, ent * mask, mask, _grads(model)


@pytest.mark.parametrize("chunk, reason", [
    (1, "one completion token per chunk"),
    (3, "3 does not divide the 13 completion tokens, and chunks cross sample boundaries"),
    (13, "exactly the completion tokens"),
    (4096, "a chunk larger than every sequence"),
])
def test_grpo_logprobs_entropy_and_gradients_equal_the_unchunked_path(chunk, reason):
    model = qwen3()
    full, chunked = _grpo(model, None), _grpo(model, chunk)
    assert torch.equal(full[2], chunked[2]), reason
    for name, a, b in zip(("logprobs", "entropy", "", "gradients"), full, chunked):
        assert _close(a, b), f"{name}: {reason}"
    assert not chunked[1].requires_grad  # entropy is a statistic, as in the unchunked path


def test_grpo_with_an_empty_completion_stays_in_the_graph():
    """An empty completion has no position through the head; a micro-batch of empty ones still
    returns log-probs in the graph (backward runs, zero gradient), as the unchunked path does."""
    model = qwen3()
    full, chunked = _grpo(model, None, [[5, 6], [7]], [[8, 9], []]), _grpo(model, 2, [[5, 6], [7]], [[8, 9], []])
    assert all(_close(a, b) for a, b in zip(full, chunked))
    lp, mask, _ = sequence_logprobs(model, [[5, 6]], [[]], 0, 2)
    assert lp.requires_grad and mask.sum() == 0


# ------------------------------------------------------------------------------ head variants
def _gemma2():
    return Gemma2ForCausalLM(Gemma2Config(**COMMON, head_dim=16, final_logit_softcapping=3.0))


def _granite():
    return GraniteForCausalLM(GraniteConfig(**COMMON, logits_scaling=4.0))


def _cohere():
    return CohereForCausalLM(CohereConfig(**COMMON, logit_scale=0.5))


class _DoubledLogits(Qwen3ForCausalLM):
    """A head post-processing token_logprobs does not know (twice the logits)."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = out.logits * 2
        return out


@pytest.mark.parametrize("build, reason", [
    (qwen3, "Qwen3 (the project's models): no post-processing, tied embeddings"),
    (_gemma2, "Gemma-2: final_logit_softcapping"),
    (_granite, "Granite: logits divided by logits_scaling"),
    (_cohere, "Cohere: logits times logit_scale"),
])
def test_the_models_logit_post_processing_is_kept(build, reason):
    torch.manual_seed(0)
    model = build()
    full, chunked = _grpo(model, None), _grpo(model, 3)
    assert all(_close(a, b) for a, b in zip(full, chunked)), reason
    assert _close(_sft(model, None, "mean")[0], _sft(model, 5, "mean")[0]), reason


def test_an_unknown_head_post_processing_is_refused():
    torch.manual_seed(0)
    model = _DoubledLogits(Qwen3Config(**COMMON, head_dim=16, tie_word_embeddings=True))
    with pytest.raises(ValueError, match="_DoubledLogits.*logits_chunk_tokens to null"):
        sequence_logprobs(model, PROMPTS, COMPLETIONS, 0, 4)


# ----------------------------------------------------------------------------- wrapped models
class _Engine(torch.nn.Module):
    """The shape of a DeepSpeed engine: the model as ``.module``, keyword calls passed through."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, **kwargs):
        return self.module(**kwargs)


def test_a_wrapped_model_is_unwrapped_for_its_head_and_called_through_the_wrapper():
    model = qwen3()
    assert token_logprobs.causal_lm(_Engine(_Engine(model))) is model
    full = _grpo(model, None)
    assert all(_close(a, b) for a, b in zip(full, _grpo(_Engine(model), 3)))


DDP_CHECK = """
import sys, datetime, socket
sys.path.insert(0, sys.argv[1])
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
import test_token_logprobs as t
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                        timeout=datetime.timedelta(seconds=60))
try:
    model = t.qwen3()
    full = t._grpo(model, None)
    ddp = DistributedDataParallel(model)
    assert t.token_logprobs.causal_lm(ddp) is model
    assert t.token_logprobs.causal_lm(torch.compile(ddp)) is model
    assert all(t._close(a, b) for a, b in zip(full, t._grpo(ddp, 3)))
finally:
    dist.destroy_process_group()
print("ddp ok")
"""


def test_a_ddp_wrapped_model_gives_the_same_chunked_values_and_gradients():
    """DDP (a compiled DDP model unwraps to the model): the head is called once per chunk and again
    in backward; its gradient hooks must fire once. A process group is process-wide and gloo blocks
    in C++ (beyond pytest-timeout's signal: in-process over a FileStore it held CI to its limit), so
    this runs in its own process, on loopback TCP (as DeepSpeed's launcher), with a hard timeout."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # left by in-process DeepSpeed tests (engines._ensure_process_group)
    proc = subprocess.run([sys.executable, "-c", DDP_CHECK, str(Path(__file__).parent)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and "ddp ok" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize("other_rank_chunks, reason", [
    (None, "not ZeRO-3 (no ds_id on the head's weight): the local count, no collective"),
    (1, "ZeRO-3, this rank has the most chunks: its own count"),
    (9, "ZeRO-3, another rank has 9 chunks: this one runs empty chunks up to 9"),
])
def test_zero3_ranks_call_the_head_equally_often(other_rank_chunks, reason, monkeypatch):
    """Under ZeRO-3 every call of the head gathers its partitioned weight, a collective: ranks with
    different token counts must still make the same number of head calls (forward and recompute)."""
    import torch.distributed as dist

    model = qwen3()
    head = model.get_output_embeddings()
    if other_rank_chunks is not None:  # what DeepSpeed's ZeRO-3 marks a partitioned parameter with
        monkeypatch.setattr(head.weight, "ds_id", 0, raising=False)
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "all_reduce", lambda t, op: t.fill_(max(int(t), other_rank_chunks)))
    calls = []
    head.register_forward_hook(lambda *_: calls.append(1))
    full = _grpo(qwen3(), None)  # 13 completion tokens: 4 chunks of 4 here
    chunked = _grpo(model, 4)
    assert all(_close(a, b) for a, b in zip(full, chunked)), reason
    chunks = max(4, other_rank_chunks or 0)
    # the model's own last-position logits, the head check, each chunk forward and recomputed
    assert len(calls) == 2 + 2 * chunks, reason


@pytest.mark.parametrize("chunk, head_calls, reason", [
    (13, 3, "one chunk covers the 13 completion tokens: the head once, kept for backward (no recompute)"),
    (4096, 3, "a chunk above any batch (the base profile's setting): the same"),
    (7, 2 + 2 * 2, "two chunks: each run in forward and again in backward"),
])
def test_a_single_chunk_is_not_recomputed(chunk, head_calls, reason):
    model = qwen3()
    calls = []
    model.get_output_embeddings().register_forward_hook(lambda *_: calls.append(1))
    full = _grpo(qwen3(), None)
    chunked = _grpo(model, chunk)
    assert all(_close(a, b) for a, b in zip(full, chunked)), reason
    # the model's own last-position logits and the head check, then the chunks
    assert len(calls) == head_calls, reason


# ----------------------------------------------------------------------------------- memory
class VocabRows(TorchDispatchMode):
    """Counts, in rows of ``V``, the tensors with the vocabulary as last dimension that operators
    allocate (views and in-place results share an input's storage and are not counted) while they
    live: ``largest`` (one tensor: ``positions`` for ``[positions, V]``, ``B·L`` for ``[B, L, V]``)
    and ``peak`` (all alive at once, those kept for backward included), forward and backward."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = self.largest = 0

    def _freed(self, rows):
        self.live -= rows

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if (isinstance(t, torch.Tensor) and t.dim() and t.shape[-1] == V
                    and t.untyped_storage().data_ptr() not in inputs):
                rows = t.numel() // V
                self.largest, self.live = max(self.largest, rows), self.live + rows
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._freed, rows)
        return out


def _without_recompute(lm, fn, rows, targets, chunk_tokens):
    """``over_chunks`` without the checkpoint: every chunk's tensors kept for backward."""
    return [fn(lm, rows[s:s + chunk_tokens], targets[s:s + chunk_tokens])
            for s in range(0, rows.shape[0], chunk_tokens)]


LONG = [list(range(10, 30)), list(range(30, 50)), list(range(50, 70))]  # 3 × 20 completion tokens


@pytest.mark.parametrize("chunk, recompute, reason", [
    (None, True, "unchunked: the probe sees the whole [B, L, V] logits (it does detect them)"),
    (2, True, "chunks of 2 positions: a few [2, V] tensors alive at once, forward and backward"),
    (5, True, "chunks of 5: a few [5, V]"),
    (2, False, "chunks kept for backward (no recomputation): the probe sees them pile up"),
])
def test_no_more_than_one_chunk_of_vocabulary_rows_alive(chunk, recompute, reason, monkeypatch):
    if not recompute:
        monkeypatch.setattr(token_logprobs, "over_chunks", _without_recompute)
    model = qwen3()
    with VocabRows() as sft:
        _sft(model, chunk, "mean")  # 2 blocks of 24 tokens, 34 label positions
    with VocabRows() as grpo:
        _grpo(model, chunk, PROMPTS, LONG)  # 3 sequences, 60 completion positions
    assert sft.live == grpo.live == 0  # the probe saw every tensor it counted freed
    if chunk is None:
        assert sft.largest >= 2 * 24 and grpo.largest >= 3 * 25, reason
        return
    # [B, 1, V]: the model's own logits at the last position, which check the head
    bound = {"sft": 3 * chunk + 2, "grpo": 3 * chunk + 3}
    within = sft.peak <= bound["sft"] and grpo.peak <= bound["grpo"]
    assert sft.largest <= max(chunk, 2) and grpo.largest <= max(chunk, 3), reason
    assert within == recompute, (reason, sft.peak, grpo.peak, bound)


# ----------------------------------------------------------------------------------- config
@pytest.mark.parametrize("cls", [GRPOConfig, SFTConfig])
def test_the_knob_is_typed_and_checked(cls):
    assert cls().logits_chunk_tokens is None  # the default runs the unchunked path
    assert config_from_params(cls, {"logits_chunk_tokens": 4096}).logits_chunk_tokens == 4096
    assert config_from_params(cls, {"logits_chunk_tokens": None}).logits_chunk_tokens is None
    for bad in ("4096", 2.5, True):
        with pytest.raises(ValueError, match="logits_chunk_tokens"):
            config_from_params(cls, {"logits_chunk_tokens": bad})
    with pytest.raises(ValueError, match="logits_chunk_tokens"):
        cls(logits_chunk_tokens=0)


# ------------------------------------------------------------------------------- DeepSpeed
@pytest.mark.slow
def test_zero2_and_zero3_with_the_chunked_head_match_plain_torch_without_it(tmp_path):
    """``tests/ds_chunked.py`` on 2 CPU ranks (about a minute): SFT and GRPO under ZeRO-2/3 with
    ``logits_chunk_tokens`` 7 against one plain torch process with the whole head. Tolerances as
    ``test_deepspeed_parity`` (losses and grad norms 1e-5, final weights 1e-4: AdamW moves a
    gradient element near its ε by up to ~lr)."""
    import json
    import os
    import socket
    import subprocess
    import sys

    pytest.importorskip("deepspeed")
    with socket.socket() as s:  # a free rendezvous port
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           port, "-m", "ds_chunked", "--out", str(tmp_path / "out.json")],
                          cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "out.json").read_text())
    for task in ("sft", "grpo"):
        ref = res[task]["torch"]
        assert len(ref["loss"]) == 4 and all(map(torch.isfinite, torch.tensor(ref["loss"])))
        for stage in ("zero2", "zero3"):
            run = res[task][stage]
            assert run["world_size"] == 2
            for key in ("loss", "grad_norm"):
                assert all(abs(a - b) < TOL for a, b in zip(run[key], ref[key])), (task, stage, key, run, ref)
            assert run["max_weight_diff"] < 1e-4 and run["rel_update_diff"] < 1e-4, (task, stage, run)
