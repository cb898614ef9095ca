"""GRPO throughput: this project's on-policy loop against TRL's ``GRPOTrainer``, same work, one run.

Same tiny Qwen3 model (the base profile's size, random weights so that every completion runs to the
length limit), same tokenizer, prompts (rendered world math tasks), reward, group size, batch, length
and sampling; TRL set to the equivalent variant (``beta=0``, ``loss_type="dapo"`` = token-level,
``num_iterations=1`` = strict on-policy, no reference model). Ours runs with the base profile's
rollout engine (``embedded``, the plain-torch decoder) and with HF ``generate`` (what TRL calls);
``--logits-chunk-tokens`` and ``--share-prompt`` set its update as the base profile does.
Prints one table: completion tokens/s and steps/s over the timed steps (the first ``--warmup``
steps of each are not timed). ``--grid`` adds rows for group sizes 8 and 16 and completion lengths
40 and 160 (``--grid-steps`` timed steps each), for our loop on the embedded engine and for TRL.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_grpo.py [--steps 12] [--max-new-tokens 40] [--grid] [--interleave 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch  # noqa: E402

from nemotron_cascade import chat, models  # noqa: E402
from nemotron_cascade.data import sft, world  # noqa: E402
from nemotron_cascade.generation.engines import make_generator  # noqa: E402
from nemotron_cascade.rl import trainer  # noqa: E402

BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def boxed_match(completions, answers):
    """The same cheap exact-match reward for both engines (the engine, not the verifier, is timed)."""
    out = []
    for c, a in zip(completions, answers):
        m = BOXED.search(c if isinstance(c, str) else c[-1]["content"])
        out.append(1.0 if m and m.group(1).strip() == a else 0.0)
    return out


def setup(seed: int = 0):
    rows = world.generate_tasks("math", "rl", 64, seed)
    samples = sft.teacher_samples(rows, 1.0, 0.0, seed, world.oracle_response)
    tokenizer = models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in samples), 1024)
    model = models.build_tiny_model(tokenizer, models.TinyModelConfig(seed=seed))
    return rows, tokenizer, model


def run_ours(args, engine: str = "embedded") -> tuple[float, float]:
    """Our GRPO loop (``rl.trainer``) with rollouts from ``engine``; the base profile's update."""
    rows, tokenizer, model = setup()
    stamps, batch = [], args.prompts * args.group
    cfg = trainer.GRPOConfig(max_steps=args.warmup + args.steps, prompts_per_step=args.prompts, group_size=args.group,
                             lr=5e-5, length_schedule=((0, args.max_new_tokens),), overlong_filter=False,
                             dynamic_filter=False, micro_batch_size=batch, logits_chunk_tokens=args.logits_chunk_tokens,
                             share_prompt_forward=args.share_prompt)
    hist = trainer.train_grpo(
        model, tokenizer, rows, lambda resp, rs: boxed_match(resp, [r["answer"] for r in rs]), cfg,
        make_generator(engine, model, tokenizer, batch), world.render_prompt,
        on_metrics=lambda m, s: stamps.append(time.perf_counter()))
    timed = hist[args.warmup:]
    dt = stamps[-1] - stamps[args.warmup - 1]
    tokens = sum(h["response_length"] * args.prompts * args.group for h in timed)
    return tokens / dt, len(timed) / dt


def run_trl(args) -> tuple[float, float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows, tokenizer, model = setup()
    data = Dataset.from_list([{"prompt": world.render_prompt(r, True), "answer": r["answer"]} for r in rows])
    stamps, tokens = [], []

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            stamps.append(time.perf_counter())

    def reward(completions, answer, completion_ids=None, **kw):
        tokens.append(sum(len(c) for c in completion_ids))
        return boxed_match(completions, answer)

    with tempfile.TemporaryDirectory() as out:
        cfg = GRPOConfig(
            output_dir=out, max_steps=args.warmup + args.steps, per_device_train_batch_size=args.prompts * args.group,
            num_generations=args.group, max_completion_length=args.max_new_tokens, learning_rate=5e-5,
            beta=0.0, loss_type="dapo", num_iterations=1, temperature=1.0, top_k=0, top_p=1.0,
            use_cpu=True, report_to="none", save_strategy="no", logging_steps=10_000, seed=0,
            dataloader_num_workers=0, disable_dropout=True, bf16=False, fp16=False)  # fp32, as ours
        GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=data,
                    processing_class=tokenizer, callbacks=[Clock()]).train()
    dt = stamps[-1] - stamps[args.warmup - 1]
    return sum(tokens[args.warmup:]) / dt, args.steps / dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--logits-chunk-tokens", type=int, default=None,
                   help="GRPOConfig.logits_chunk_tokens of our loop (the base profile's value)")
    p.add_argument("--share-prompt", action="store_true",
                   help="GRPOConfig.share_prompt_forward of our loop (the base profile's value)")
    p.add_argument("--grid", action="store_true", help="add group 8/16 x length 40/160 rows")
    p.add_argument("--interleave", type=int, default=0,
                   help="then N rounds of (ours on the embedded engine, TRL) at the default shape, one "
                        "after the other, so that drift of the machine hits both arms of a round alike")
    p.add_argument("--grid-steps", type=int, default=4)
    args = p.parse_args()
    torch.set_num_threads(2)
    logging.basicConfig(level=logging.WARNING)
    print("| engine | prompts x group | new tokens | completion tokens/s | steps/s | s/step |\n"
          "|---|---|---|---|---|---|")
    rows = {}

    def row(name, fn, a):
        tps, sps = fn(a)
        rows[name, a.group, a.max_new_tokens] = tps
        print(f"| {name} | {a.prompts} x {a.group} | {a.max_new_tokens} | {tps:,.0f} | {sps:.2f} | {1 / sps:.2f} |",
              flush=True)

    row("nemotron-cascade, embedded engine", run_ours, args)
    row("nemotron-cascade, HF generate", lambda a: run_ours(a, "hf"), args)
    row("TRL GRPOTrainer 1.16", run_trl, args)
    trl = rows["TRL GRPOTrainer 1.16", args.group, args.max_new_tokens]
    for name in ("embedded engine", "HF generate"):
        ours = rows[f"nemotron-cascade, {name}", args.group, args.max_new_tokens]
        print(f"| ratio: {name} / TRL | | | {ours / trl:.2f}x | | |")
    for r in range(args.interleave):
        ours, trl = run_ours(args)[0], run_trl(args)[0]
        print(f"| round {r + 1}: ours (embedded) / TRL | {args.prompts} x {args.group} | {args.max_new_tokens} | "
              f"{ours:,.0f} / {trl:,.0f} = {ours / trl:.2f}x | | |", flush=True)
    if args.grid:
        for group in (8, 16):
            for length in (40, 160):
                a = argparse.Namespace(**{**vars(args), "group": group, "max_new_tokens": length,
                                          "steps": args.grid_steps, "warmup": 1})
                row("nemotron-cascade, embedded engine", run_ours, a)
                row("TRL GRPOTrainer 1.16", run_trl, a)
                ratio = (rows["nemotron-cascade, embedded engine", group, length]
                         / rows["TRL GRPOTrainer 1.16", group, length])
                print(f"| ratio | {args.prompts} x {group} | {length} | {ratio:.2f}x | | |", flush=True)


if __name__ == "__main__":
    main()
