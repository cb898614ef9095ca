"""The chunked LM head under DeepSpeed ZeRO-2/3 on 2 CPU ranks against plain torch without it.

Launch with ``torchrun --nproc_per_node 2 -m ds_chunked --out FILE``. Rank 0 first trains the plain
torch reference (one process, the whole global batch, ``logits_chunk_tokens`` unset: the whole
head at once), then every rank trains fresh copies with DeepSpeed ZeRO-2 and ZeRO-3 in fp32 with
``logits_chunk_tokens`` set (a chunk that divides nothing). Under ZeRO-3 the head's weight (tied
with the embeddings) is a partitioned parameter that the engine gathers around each module call:
the chunked path calls the head once per chunk and again per chunk in backward. Rank 0 writes
``FILE``: per task and run, the per-step losses and gradient norms and ``ds_parity.weight_diffs``.

* ``sft``: ``train_sft``, 4 steps of 4 packed blocks of 128 tokens (2 per rank);
* ``grpo``: ``train_grpo`` on ``ds_parity.FixedRollouts``, nothing poisoned (``ds_parity``'s
  fault injection wraps the 4-argument ``sequence_logprobs`` call of the unchunked path).
"""

from __future__ import annotations

import argparse
import os

import ds_parity  # tests/

CHUNK = 7  # divides neither the SFT label positions nor the completion tokens of a micro-batch


def run_sft(tok, fresh, engine: dict):
    """Four SFT steps of 4 packed blocks; ``(model, record)``."""
    from nemotron_cascade.training import packing, sft

    blocks, _ = packing.prepare_blocks(ds_parity._samples(), tok, 128)
    cfg = sft.SFTConfig(lr=1e-2, max_steps=4, warmup_steps=2, batch_size=4, log_every=1, **engine)
    model = fresh()
    hist = sft.train_sft(model, blocks, cfg)
    return model, {"loss": [h["loss"] for h in hist], "grad_norm": [h["grad_norm"] for h in hist]}


def run_grpo(tok, fresh, engine: dict):
    """Four GRPO steps of 4 prompts × 4 samples (2 micro-batches of 4 per rank); ``(model, record)``."""
    from nemotron_cascade.rl import trainer

    cfg = trainer.GRPOConfig(max_steps=4, prompts_per_step=4, group_size=4, lr=1e-2, length_schedule=((0, 16),),
                             micro_batch_size=4, overlong_filter=True, dynamic_filter=True, seed=0, **engine)
    model = fresh()
    hist = trainer.train_grpo(model, tok, ds_parity.GRPO_ROWS, ds_parity._digit_share, cfg,
                              ds_parity.FixedRollouts(tok), ds_parity._render)
    return model, {"loss": [h["loss"] for h in hist], "grad_norm": [h["grad_norm"] for h in hist]}


def main(argv=None) -> None:
    import torch
    import torch.distributed as dist

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tok, fresh = ds_parity.tiny_tokenizer_and_model()
    rank0 = int(os.environ.get("RANK", "0")) == 0
    out: dict = {}
    for task, run in (("sft", run_sft), ("grpo", run_grpo)):
        init, res, ref = fresh().state_dict(), {}, None
        if rank0:
            model, res["torch"] = run(tok, fresh, {})
            ref = model.state_dict()
        for stage in (2, 3):
            model, rec = run(tok, fresh, {"engine": "deepspeed", "deepspeed": ds_parity.fp32_zero(stage),
                              "logits_chunk_tokens": CHUNK})
            rec["world_size"] = dist.get_world_size()
            if rank0:
                rec.update(ds_parity.weight_diffs(model, ref, init))
            res[f"zero{stage}"] = rec
        out[task] = res
    ds_parity.finish(out, args.out, rank0)


if __name__ == "__main__":
    main()
