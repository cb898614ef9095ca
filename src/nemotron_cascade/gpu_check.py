"""A few minutes' check of one accelerator: SFT and GRPO steps of the tiny model, with a CPU twin.

``python -m nemotron_cascade.gpu_check [--device cuda|cpu] [--sft-steps N] [--grpo-steps N]``
(``scripts/gpu_check.sh`` wraps it). Nothing is fetched: the tokenizer and model are built locally
from the embedded world, as in ``tests/conftest.py``.

The model on ``--device`` and a twin on the CPU start from the same weights and take the same
steps: the same SFT batches, then GRPO steps whose rollouts are sampled on the device and fed to
both (same rewards, same advantages). The table shows throughput and peak memory on the device and
the largest loss difference from the twin, which must stay under ``--tol`` (fp32, TF32 off).
Exit status: 0 on parity, 1 on a mismatch, 2 when the device is not there.

The steps are written here, device-aware, from the project's pieces (``token_loss``, ``collate``,
``batches``, ``group_advantages``, ``policy_loss``): the Kedro loops (``train_sft``,
``train_grpo``, ``HFGenerator``) build their tensors on the CPU and do not run on a GPU yet.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time


def _seq_logprobs(model, prompt_ids, completion_ids, pad_id, device):
    """Per-token log-probs of the completions (``rl.trainer.sequence_logprobs`` on ``device``)."""
    import torch

    seqs = [p + c for p, c in zip(prompt_ids, completion_ids)]
    L, T = max(map(len, seqs)), max(1, max(map(len, completion_ids)))
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), L), dtype=torch.long)
    index = torch.zeros((len(seqs), T), dtype=torch.long)
    targets = torch.zeros((len(seqs), T), dtype=torch.long)
    mask = torch.zeros((len(seqs), T))
    for b, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        ids[b, :len(p) + len(c)], attn[b, :len(p) + len(c)] = torch.tensor(p + c), 1
        index[b, :len(c)] = torch.arange(len(p) - 1, len(p) - 1 + len(c))
        targets[b, :len(c)], mask[b, :len(c)] = torch.tensor(c, dtype=torch.long), 1.0
    ids, attn, index, targets, mask = (t.to(device) for t in (ids, attn, index, targets, mask))
    logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits.float()
    picked = logits.gather(1, index.unsqueeze(-1).expand(-1, -1, logits.size(-1)))
    return torch.log_softmax(picked, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1), mask


def _sample(model, tokenizer, prompts, group, max_new_tokens, seed, device):
    """``group`` samples per prompt on ``device`` (temperature 1): prompt ids, completion ids, texts."""
    import torch

    torch.manual_seed(seed)
    expanded = [p for p in prompts for _ in range(group)]
    enc = tokenizer(expanded, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_p=None, top_k=None,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
    p_ids = [tokenizer(p, add_special_tokens=False).input_ids for p in expanded]
    comps, texts, eos = [], [], tokenizer.eos_token_id
    for row in out[:, enc.input_ids.shape[1]:].tolist():
        row = row[:row.index(eos) + 1] if eos in row else [t for t in row if t != tokenizer.pad_token_id]
        comps.append(row or [eos])
        texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return p_ids, comps, texts


def run(device: str = "cuda", sft_steps: int = 20, grpo_steps: int = 3, seed: int = 0) -> dict:
    """Train on ``device`` and on a CPU twin in lock-step; throughput, memory and loss differences."""
    import torch

    from nemotron_cascade import chat, models
    from nemotron_cascade.data import sft as sft_data
    from nemotron_cascade.data import world
    from nemotron_cascade.rl.grpo import group_advantages, policy_loss
    from nemotron_cascade.training import packing
    from nemotron_cascade.training.sft import batches, collate, token_loss

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = [r for d in world.DOMAINS for r in world.generate_tasks(d, "sft", 30, 0)]
    samples = sft_data.teacher_samples(rows, 0.7, 0.2, 0, world.oracle_response)
    tok = models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in samples), 400)
    base = models.build_tiny_model(tok, models.TinyModelConfig(
        hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128, seed=seed))
    twins = {"dev": copy.deepcopy(base).to(device), "cpu": base}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95)) for k, m in twins.items()}
    where = {"dev": device, "cpu": "cpu"}
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)

    def step(key, loss_fn):
        m, opt = twins[key], opts[key]
        m.train()
        loss = loss_fn(m, where[key])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    blocks, _ = packing.prepare_blocks(samples, tok, 256, seed)
    sft_diff, sft_tokens, sft_time, sft_loss = 0.0, 0, 0.0, float("nan")
    for s in range(sft_steps):
        ids, labels, pos = collate(batches(blocks, 8, s, seed))
        t0 = time.perf_counter()
        sft_loss = step("dev", lambda m, d: token_loss(m, ids.to(d), labels.to(d), pos.to(d)))
        sync()
        sft_time += time.perf_counter() - t0
        sft_tokens += int((labels != -100).sum())
        sft_diff = max(sft_diff, abs(sft_loss - step("cpu", lambda m, d: token_loss(m, ids, labels, pos))))

    # reward: the response length, a stand-in with variance (the untrained tiny model solves no
    # task, and all-zero rewards would give zero advantages and a vacuous parity check)
    rl_rows = world.generate_tasks("math", "rl", 4 * max(1, grpo_steps), 0)
    pad = tok.pad_token_id
    grpo_diff, grpo_tokens, grpo_time, grpo_loss, rewards_seen = 0.0, 0, 0.0, float("nan"), []
    for s in range(grpo_steps):
        batch_rows = rl_rows[4 * s:4 * s + 4]
        t0 = time.perf_counter()
        twins["dev"].eval()
        p_ids, c_ids, texts = _sample(twins["dev"], tok, [world.render_prompt(r, True) for r in batch_rows], 4,
                                      48, seed + s, device)
        rewards = torch.tensor([float(len(c)) for c in c_ids])
        adv = group_advantages(rewards, 4)

        def loss_fn(m, d):
            lp, mask = _seq_logprobs(m, p_ids, c_ids, pad, d)
            return policy_loss(lp, adv.to(d), mask)

        grpo_loss = step("dev", loss_fn)
        sync()
        grpo_time += time.perf_counter() - t0
        grpo_tokens += sum(map(len, c_ids))
        rewards_seen.append(float(rewards.mean()))
        grpo_diff = max(grpo_diff, abs(grpo_loss - step("cpu", loss_fn)))

    return {"device": device, "sft_steps": sft_steps, "sft_tokens_per_s": sft_tokens / max(sft_time, 1e-9),
            "sft_final_loss": sft_loss, "sft_max_loss_diff": sft_diff, "grpo_steps": grpo_steps,
            "grpo_tokens_per_s": grpo_tokens / max(grpo_time, 1e-9), "grpo_final_loss": grpo_loss,
            "grpo_mean_reward": sum(rewards_seen) / max(1, len(rewards_seen)), "grpo_max_loss_diff": grpo_diff,
            "peak_gpu_mem_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None}


def table(r: dict, tol: float) -> str:
    ok = lambda d: "ok" if d <= tol else "MISMATCH"  # noqa: E731
    mem = "n/a (cpu)" if r["peak_gpu_mem_mib"] is None else f"{r['peak_gpu_mem_mib']:.0f} MiB"
    lines = [f"device {r['device']}   peak GPU memory {mem}   parity tolerance {tol:g} (vs a CPU twin)",
             f"{'phase':<6} {'steps':>5} {'tokens/s':>10} {'final loss':>11} {'max |Δloss| vs cpu':>19}  parity",
             f"{'sft':<6} {r['sft_steps']:>5} {r['sft_tokens_per_s']:>10.0f} {r['sft_final_loss']:>11.4f} "
             f"{r['sft_max_loss_diff']:>19.2e}  {ok(r['sft_max_loss_diff'])}",
             f"{'grpo':<6} {r['grpo_steps']:>5} {r['grpo_tokens_per_s']:>10.0f} {r['grpo_final_loss']:>11.4f} "
             f"{r['grpo_max_loss_diff']:>19.2e}  {ok(r['grpo_max_loss_diff'])}   (mean reward: length "
             f"{r['grpo_mean_reward']:.1f})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--sft-steps", type=int, default=20)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-3, help="largest allowed |loss(device) - loss(cpu)|")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU visible (torch {torch.__version__}, cuda build "
              f"{torch.version.cuda}); run with --device cpu to check the code path only", file=sys.stderr)
        return 2
    if args.sft_steps < 1 or args.grpo_steps < 1:
        parser.error("--sft-steps and --grpo-steps must be >= 1")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    r = run(args.device, args.sft_steps, args.grpo_steps, args.seed)
    print(table(r, args.tol))
    return 0 if max(r["sft_max_loss_diff"], r["grpo_max_loss_diff"]) <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
