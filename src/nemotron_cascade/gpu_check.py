"""A few minutes' check of one accelerator: SFT and GRPO steps of the tiny model, with a CPU twin.

``python -m nemotron_cascade.gpu_check [--device cuda|cpu] [--sft-steps N] [--grpo-steps N]``
(``scripts/gpu_check.sh`` wraps it). Nothing is fetched: the tokenizer and model are built locally
from the embedded world, as in ``tests/conftest.py``.

The model on ``--device`` and a twin on the CPU start from the same weights and take the same
steps: the same SFT batches, then GRPO steps whose rollouts are sampled on the device and fed to
both (same rewards, same advantages). The table shows throughput and peak memory on the device and
the largest loss difference from the twin, which must stay under ``--tol`` (fp32, TF32 off).
Exit status: 0 on parity, 1 on a mismatch, 2 when the device is not there.

The steps are written here from the project's pieces (``token_loss``, ``collate``, ``batches``,
``group_advantages``, ``policy_loss`` and the trainer's ``sequence_logprobs``, which follow the
model's device); the Kedro loops do not place the model on a GPU yet (the scale issue).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time


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


class _Twins:
    """The model on the device and its CPU twin, each with its AdamW, stepped in lock-step."""

    def __init__(self, base, device: str):
        import torch

        self.models = {"dev": copy.deepcopy(base).to(device), "cpu": base}
        self.opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95)) for k, m in self.models.items()}
        self.where, self.cuda = {"dev": device, "cpu": "cpu"}, device.startswith("cuda")
        self.device = device

    def step(self, key: str, loss_fn) -> float:
        """One clipped AdamW step of twin ``key`` on ``loss_fn(model, device)``; the loss."""
        import torch

        m, opt = self.models[key], self.opts[key]
        m.train()
        loss = loss_fn(m, self.where[key])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)


def _sft_phase(twins: _Twins, samples, tok, steps: int, seed: int) -> dict:
    """``steps`` SFT steps on both twins: tokens/s on the device, final loss, largest loss difference."""
    from nemotron_cascade.training import packing
    from nemotron_cascade.training.sft import batches, collate, token_loss

    blocks, _ = packing.prepare_blocks(samples, tok, 256, seed)
    diff, tokens, spent, loss = 0.0, 0, 0.0, float("nan")
    for s in range(steps):
        ids, labels, pos = collate(batches(blocks, 8, s, seed))
        t0 = time.perf_counter()
        loss = twins.step("dev", lambda m, d: token_loss(m, ids.to(d), labels.to(d), pos.to(d)))
        twins.sync()
        spent += time.perf_counter() - t0
        tokens += int((labels != -100).sum())
        diff = max(diff, abs(loss - twins.step("cpu", lambda m, d: token_loss(m, ids, labels, pos))))
    return {"sft_steps": steps, "sft_tokens_per_s": tokens / max(spent, 1e-9), "sft_final_loss": loss,
            "sft_max_loss_diff": diff}


def _grpo_phase(twins: _Twins, tok, steps: int, seed: int) -> dict:
    """``steps`` GRPO steps, rollouts sampled on the device and fed to both twins.

    The reward is the response length, a stand-in with variance (the untrained tiny model solves no
    task, and all-zero rewards would give zero advantages and a vacuous parity check)."""
    import torch

    from nemotron_cascade.data import world
    from nemotron_cascade.rl.grpo import group_advantages, policy_loss
    from nemotron_cascade.rl.update import sequence_logprobs

    rl_rows = world.generate_tasks("math", "rl", 4 * max(1, steps), 0)
    diff, tokens, spent, loss, rewards_seen = 0.0, 0, 0.0, float("nan"), []
    for s in range(steps):
        t0 = time.perf_counter()
        twins.models["dev"].eval()
        p_ids, c_ids, _ = _sample(twins.models["dev"], tok,
                                  [world.render_prompt(r, True) for r in rl_rows[4 * s:4 * s + 4]],
                                  4, 48, seed + s, twins.device)
        rewards = torch.tensor([float(len(c)) for c in c_ids])
        adv = group_advantages(rewards, 4)

        def loss_fn(m, d):
            lp, mask, _ = sequence_logprobs(m, p_ids, c_ids, tok.pad_token_id)
            return policy_loss(lp, adv.to(d), mask)

        loss = twins.step("dev", loss_fn)
        twins.sync()
        spent += time.perf_counter() - t0
        tokens += sum(map(len, c_ids))
        rewards_seen.append(float(rewards.mean()))
        diff = max(diff, abs(loss - twins.step("cpu", loss_fn)))
    return {"grpo_steps": steps, "grpo_tokens_per_s": tokens / max(spent, 1e-9), "grpo_final_loss": loss,
            "grpo_mean_reward": sum(rewards_seen) / max(1, len(rewards_seen)), "grpo_max_loss_diff": diff}


def run(device: str = "cuda", sft_steps: int = 20, grpo_steps: int = 3, seed: int = 0) -> dict:
    """Train on ``device`` and on a CPU twin in lock-step; throughput, memory and loss differences."""
    import torch

    from nemotron_cascade import chat, models
    from nemotron_cascade.data import sft as sft_data
    from nemotron_cascade.data import world

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = [r for d in world.DOMAINS for r in world.generate_tasks(d, "sft", 30, 0)]
    samples = sft_data.teacher_samples(rows, 0.7, 0.2, 0, world.oracle_response)
    tok = models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in samples), 400)
    base = models.build_tiny_model(tok, models.TinyModelConfig(
        hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128, seed=seed))
    twins = _Twins(base, device)
    if twins.cuda:
        torch.cuda.reset_peak_memory_stats(device)
    out = {"device": device, **_sft_phase(twins, samples, tok, sft_steps, seed),
           **_grpo_phase(twins, tok, grpo_steps, seed)}
    out["peak_gpu_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20 if twins.cuda else None
    return out


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
