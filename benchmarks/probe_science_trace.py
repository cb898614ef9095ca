"""Probe: which science trace can the tiny model learn to turn a worked value into an option letter?

Every style starts from the same pretrained tiny base (the ``base`` checkpoint of a ``make run``),
trains on the world's science SFT tasks alone (300 steps of 16, loss on the trace after the worked
value, as SFT puts it on the response), and is scored on held-out benchmark items given the right
worked value: the prompt and the first two trace lines (formula, worked value) are the prefix, the
model writes the rest greedily, and the letter after "The answer is" must be the right one. So it
measures the one step the cascade's science score depended on, reading off the letter, with
nothing else in the way.

Styles (the same tasks and options in each; options have distinct units digits):
  plain        "74 km (D)" options, "74 km (D) is the answer."   (the old default: copy the letter
               that follows the value; no longer in the world, rendered here by :func:`plain_task`)
  nounit       "74 (D)" options, "74 (D) is the answer."          (no unit between value and letter)
  glued        "74D km" options, "74D is the answer."             (the letter right after the digit:
               a one-token induction)
  letterfirst  "(D) 74 km" options, "74 km is (D)."
  copyopts     plain options; the trace copies them in order ("62 (A) 38 (B) ...") and then answers
  equal        "(D) 74 km" options; "(A) 62 km: 4 vs 2 no" ... "(D) 74 km: 4 vs 4 same"
  check        the world's own (shipped) check trace: "(A) 62 km: 4 - 2 = 2" ... "4 - 4 = 0, so the
               answer" (math's units column)

Command: .venv/bin/python benchmarks/probe_science_trace.py [--steps 300] [styles ...]
(~1.5 min a style on 2 cores; prints a table of letter accuracy after 100, 200 and 300 steps).
"""

from __future__ import annotations

import argparse
import glob
import logging
import random
import re
import time

import torch

from nemotron_cascade import models
from nemotron_cascade.data import world

log = logging.getLogger("probe_science_trace")
L = world.LETTERS


def _parts(task: dict) -> tuple[str, list[int], str, int]:
    values = [int(c.split(" ", 1)[0]) for c in task["choices"]]
    return task["prompt"].split("\nOptions:")[0], values, task["choices"][0].split(" ", 1)[1], L.index(task["answer"])


def render(task: dict, check_task: dict, style: str) -> tuple[str, str]:
    """(prefix, completion) of one task in ``style``; the prefix ends after the worked value."""
    question, values, unit, k = _parts(task)
    right = values[k]
    work = task["trace"].splitlines()[:2]
    if style in ("plain", "copyopts", "check"):  # the world's own options and trace
        own = check_task if style == "check" else task
        opts = own["prompt"].split("Options:\n")[1].split("\nAnswer")[0]
        body = own["trace"].splitlines()[2:]
        if style == "copyopts":
            body = [" ".join(f"{v} ({L[i]})" for i, v in enumerate(values))] + body
    elif style == "nounit":
        opts = "\n".join(f"{v} ({L[i]})" for i, v in enumerate(values))
        body = [f"{right} ({L[k]}) is the answer."]
    elif style == "glued":
        opts = "\n".join(f"{v}{L[i]} {unit}" for i, v in enumerate(values))
        body = [f"{right}{L[k]} is the answer."]
    elif style == "letterfirst":
        opts = "\n".join(f"({L[i]}) {v} {unit}" for i, v in enumerate(values))
        body = [f"{right} {unit} is ({L[k]})."]
    elif style == "equal":
        opts = "\n".join(f"({L[i]}) {v} {unit}" for i, v in enumerate(values))
        body = [f"({L[i]}) {v} {unit}: {right % 10} vs {v % 10} {'same' if v == right else 'no'}"
                for i, v in enumerate(values[:k + 1])]
    else:
        raise ValueError(f"unknown style {style!r}")
    prefix = f"{question}\nOptions:\n{opts}\nAnswer with the letter.\n" + "\n".join(work) + "\n"
    return prefix, "\n".join(body) + f"\nThe answer is {L[k]}."


def plain_task(task: dict) -> dict:
    """A world science task (check style) in the retired ``plain`` style, the same problem and
    options: the options list the value before the letter ("48 N (B)") and the trace ends after the
    formula and the worked value with "48 N (B) is the answer." (the student must find its value
    among the options and copy the letter after it)."""
    question, k = task["prompt"].split("\nOptions:")[0], L.index(task["answer"])
    options = "\n".join(f"{c} ({L[i]})" for i, c in enumerate(task["choices"]))
    trace = "\n".join([*task["trace"].splitlines()[:2], f"{task['choices'][k]} ({L[k]}) is the answer."])
    return {**task, "prompt": f"{question}\nOptions:\n{options}\nAnswer with the letter.", "trace": trace}


def _rows(split: str, n: int, seed: int) -> list[tuple[dict, dict]]:
    """(plain, check) renderings of the world's first ``n`` science tasks of ``split``."""
    return [(plain_task(task), task) for task in world.generate_tasks("science", split, n, seed)]


@torch.no_grad()
def letter_accuracy(model, tok, rows, style: str, batch: int = 50) -> float:
    model.eval()
    tok.padding_side = "left"
    right = 0
    for i in range(0, len(rows), batch):
        chunk = rows[i:i + batch]
        enc = tok([render(p, c, style)[0] for p, c in chunk], return_tensors="pt", padding=True)
        out = model.generate(**enc, max_new_tokens=110, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        for text, (p, _) in zip(tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True), chunk):
            m = re.search(r"The answer is ([A-D])", text)
            right += bool(m and m.group(1) == p["answer"])
    model.train()
    return right / len(rows)


def probe(base: str, style: str, steps: int, eval_every: int, batch_size: int = 16, lr: float = 3e-3,
          seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    tok = models.load_tokenizer(base)
    model = models.load_model(base)
    model.train()
    train, bench = _rows("sft", 2800, 0), _rows("bench", 300, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    r = random.Random(seed)
    scores = []
    for step in range(steps):
        pairs = [render(p, c, style) for p, c in r.sample(train, batch_size)]
        tok.padding_side = "right"
        enc = tok([p + c + tok.eos_token for p, c in pairs], return_tensors="pt", padding=True)
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        for i, (prefix, _) in enumerate(pairs):
            labels[i, :len(tok(prefix)["input_ids"])] = -100  # loss on the completion only
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 20)
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % eval_every == 0:
            scores.append(letter_accuracy(model, tok, bench, style))
            log.info("%s step %d loss %.3f letter accuracy %.3f", style, step + 1, loss.item(), scores[-1])
    return scores


def main() -> None:
    styles = ["plain", "nounit", "glued", "letterfirst", "copyopts", "equal", "check"]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("styles", nargs="*", default=styles, help=f"of {styles}")
    ap.add_argument("--base", default=None, help="base checkpoint dir (default: the latest data/06_models/base)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=100)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    base = args.base or (sorted(glob.glob("data/06_models/base/*/base")) or [None])[-1]
    if base is None:
        raise SystemExit("no base checkpoint under data/06_models/base: run `make run` (or --base DIR)")
    results = {}
    for style in args.styles:
        t0 = time.time()
        results[style] = probe(base, style, args.steps, args.eval_every)
        log.info("%s took %.0f s", style, time.time() - t0)
    marks = [args.eval_every * (i + 1) for i in range(args.steps // args.eval_every)]
    print(f"\nletter accuracy given the right worked value (300 benchmark items), base {base}\n")
    print("| style | " + " | ".join(f"after {m} steps" for m in marks) + " |")
    print("|---|" + "---:|" * len(marks))
    for style, scores in results.items():
        print(f"| {style} | " + " | ".join(f"{x:.3f}" for x in scores) + " |")


if __name__ == "__main__":
    main()
