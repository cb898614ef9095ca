"""One accelerator's check in a few minutes: the project's own SFT, GRPO and evaluation at Qwen3-0.6B's shape.

``python -m nemotron_cascade.gpu_check [--device cuda|cuda:N|auto|cpu] [--tiny]`` (``scripts/gpu_check.sh``
wraps it). Nothing is fetched: the model is a randomly initialised Qwen3 of Qwen3-0.6B's shape (hidden
1024, 28 layers, 16 heads, 8 KV heads, head_dim 128, MLP 3072, vocabulary 151,936, tied embeddings:
0.60 B parameters), built from a hand-written ``Qwen3Config``, in bf16 as the gpu profile loads it; the
tokenizer is the project's, trained on the embedded world and padded with plain added tokens to the
model's vocabulary (every id decodes). ``--tiny`` is a small model and short sequences: the CPU mode,
which ``--device cpu`` implies (``--full`` runs the full shape there anyway).

The phases run the project's loops, not a copy: :func:`~nemotron_cascade.training.sft.train_sft` on
packed 16K-token blocks with gradient checkpointing, :func:`~nemotron_cascade.rl.trainer.train_grpo`
with HF rollouts (and a second, vLLM-rollout GRPO run when vLLM imports on a GPU), and the evaluation
node on the world's benchmark rows, all inside ``placement.scope(device)``: the loop places the model
(it starts on the CPU, as a loaded checkpoint does) and trains it with fp32 master weights under bf16
autocast. GRPO's reward is a stand-in with variance (the response's length in characters): an
untrained model solves nothing, and equal rewards would give no gradient.

Placement is checked, not assumed: the first step of each phase runs under
:class:`~nemotron_cascade.training.device_audit.DeviceAudit` (on a GPU every operation's tensors are
where ``tensor.device`` says; on the CPU the audit's virtual device), and after each phase every
parameter and buffer must be on the device. Then timed runs measure throughput. The table shows, per
phase, tokens/s, peak GPU memory and MFU.

MFU = achieved model FLOP/s ÷ the GPU's dense bf16 peak (:data:`PEAK_BF16_TFLOPS`, or
``--peak-tflops``), with training FLOPs per token (forward + backward, PaLM's appendix B)

    6·N + 6·L·H·Q·T

N parameters (the tied embedding once: it is the LM head's matmul; the input lookup costs nothing),
L layers, H·Q the attention width (heads × head_dim), T the sequence length (SFT: the block; GRPO's
update: the batch's mean prompt + response length); the attention term is 12·L·H·Q·T halved for
causal masking. Gradient checkpointing's recomputed forward is not counted (model FLOPs, not
hardware FLOPs). Rollouts and evaluation report tokens/s only (generation is memory-bound).

Replaces the earlier CPU-twin parity check: a CPU twin of a 0.6 B model at 16K tokens takes minutes
per step on the host, and the numerics it compared are covered on the CPU by the tests (fp32 code
path unchanged, bf16 master weights, the DeepSpeed parity runs); what only the GPU can show —
placement, memory, speed — is checked here directly.

Exit status: 0 when every check holds, 1 when a tensor was left off the device (the message names
it) or a loss was not finite, 2 when the device is not there.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field, replace

log = logging.getLogger(__name__)

QWEN3_0_6B = {"hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
              "head_dim": 128, "intermediate_size": 3072, "vocab_size": 151_936, "tie_word_embeddings": True,
              "max_position_embeddings": 40_960, "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32,
        "intermediate_size": 128, "vocab_size": None, "tie_word_embeddings": True, "max_position_embeddings": 4096,
        "rope_theta": 10_000.0}
# dense bf16 peak per GPU model (vendor data sheets, no sparsity), matched in this order against the name
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0), ("B200", 2250.0),
                    ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0))


@dataclass(frozen=True)
class Sizes:
    """What one check runs: the model's shape and each phase's size."""

    shape: dict
    block_tokens: int = 16_384
    sft_batch: int = 1
    sft_steps: int = 6
    grpo_steps: int = 3
    prompts: int = 4
    group: int = 4
    new_tokens: int = 256
    micro_batch: int = 8
    eval_items: int = 2  # per domain
    eval_tokens: int = 64
    world_rows: int = 60  # SFT rows per domain (enough text for two 16K blocks)


FULL = Sizes(QWEN3_0_6B)
SMALL = Sizes(TINY, block_tokens=256, sft_batch=2, sft_steps=3, grpo_steps=2, prompts=2, group=2, new_tokens=12,
              micro_batch=4, eval_items=1, eval_tokens=8, world_rows=20)


@dataclass
class Check:
    """Findings of the placement checks, and the per-phase measurements."""

    device: str
    findings: list[str] = field(default_factory=list)
    phases: dict[str, dict] = field(default_factory=dict)


def build_tokenizer(sizes: Sizes):
    """The project's tokenizer on the world's SFT samples (padded to the model's vocabulary); the samples."""
    from nemotron_cascade import chat, models
    from nemotron_cascade.data import sft as sft_data
    from nemotron_cascade.data import world

    rows = [r for d in world.DOMAINS for r in world.generate_tasks(d, "sft", sizes.world_rows, 0)]
    samples = sft_data.teacher_samples(rows, 0.7, 0.2, 0, world.oracle_response)
    tok = models.train_tokenizer((chat.render(s["messages"], s["tools"]) for s in samples), 400)
    vocab = sizes.shape["vocab_size"]
    if vocab and vocab > len(tok):  # plain added tokens: every sampled id decodes to text
        tok.add_tokens([f"<v{i}>" for i in range(vocab - len(tok))])
    return tok, samples


def build_model(tok, sizes: Sizes, dtype: str):
    """A randomly initialised Qwen3 of ``sizes.shape`` in ``dtype``, on the CPU (the loop places it)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    shape = {**sizes.shape, "vocab_size": sizes.shape["vocab_size"] or len(tok)}
    torch.manual_seed(0)
    cfg = Qwen3Config(**shape, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    model = Qwen3ForCausalLM(cfg).to(getattr(torch, dtype))
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    return model


def flops_per_token(config, seq_len: float) -> float:
    """Training FLOPs per token: 6·N + 6·L·H·Q·T (see the module docstring)."""
    n = sum(p.numel() for p in _unique_params(config))
    return 6 * n + 6 * config.num_hidden_layers * config.num_attention_heads * config.head_dim * seq_len


def _unique_params(config):
    """The parameters of a meta-device model of ``config`` (shapes only, tied weights once)."""
    import torch
    from transformers import Qwen3ForCausalLM

    with torch.device("meta"):
        return list(Qwen3ForCausalLM(config).parameters())


def peak_flops(device: str, override_tflops: float | None = None) -> float | None:
    """The device's dense bf16 peak in FLOP/s (``None`` on the CPU or an unknown GPU)."""
    import torch

    if override_tflops:
        return override_tflops * 1e12
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in PEAK_BF16_TFLOPS if key in name), None)


class Phase:
    """A phase's measurement: wall time and peak GPU memory (``with Phase(device) as p``)."""

    def __init__(self, device: str):
        import torch

        self.device, self.cuda, self.torch = device, device.startswith("cuda"), torch

    def __enter__(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self.t0
        self.peak_mib = self.torch.cuda.max_memory_allocated(self.device) / 2**20 if self.cuda else None
        return False


def audited(check: Check, model, what: str, fn):
    """Run ``fn()`` under a :class:`DeviceAudit`; its findings, named, go to ``check``."""
    from nemotron_cascade.training.device_audit import DeviceAudit

    with DeviceAudit(model, check.device) as audit:
        out = fn()
    check.findings += [f"{what}: {f}" for f in dict.fromkeys(str(f) for f in audit.findings)]
    return out


def placement_findings(model, device: str, what: str) -> list[str]:
    """Every parameter or buffer of ``model`` that is not on ``device``, named."""
    import torch

    target = torch.device(device)
    return [f"{what}: {name} is on {t.device}, not {target}"
            for name, t in (*model.named_parameters(), *model.named_buffers()) if t.device != target]


def _step_times(stamps: list[float]) -> float:
    """Seconds per step from the end-of-step times (the first step, warm-up, left out when possible)."""
    if len(stamps) > 2:
        return (stamps[-1] - stamps[1]) / (len(stamps) - 2)
    return stamps[-1] - stamps[0]


def sft_phase(check: Check, model, tok, samples, sizes: Sizes, peak: float | None) -> None:
    """One audited SFT step, then ``sft_steps`` timed ones on packed ``block_tokens`` blocks."""
    from nemotron_cascade.training import packing, sft

    blocks, _ = packing.prepare_blocks(samples, tok, sizes.block_tokens, 0)
    cfg = sft.SFTConfig(lr=2e-5, warmup_steps=0, batch_size=sizes.sft_batch, log_every=1, checkpoint_every=10**9,
                        gradient_checkpointing=True)
    audited(check, model, "sft", lambda: sft.train_sft(model, blocks, replace(cfg, max_steps=1)))
    stamps = [time.perf_counter()]
    with Phase(check.device) as p:
        hist = sft.train_sft(model, blocks, replace(cfg, max_steps=sizes.sft_steps),
                             on_metrics=lambda m, s: stamps.append(time.perf_counter()))
    tokens = sizes.sft_batch * sizes.block_tokens
    rate = tokens / _step_times(stamps)
    check.findings += placement_findings(model, check.device, "after sft")
    check.phases["sft"] = {"steps": sizes.sft_steps, "tokens_per_s": rate, "peak_mib": p.peak_mib,
                           "loss": hist[-1]["loss"], "mfu": _mfu(rate, model.config, sizes.block_tokens, peak)}


def _mfu(tokens_per_s: float, config, seq_len: float, peak: float | None) -> float | None:
    return None if peak is None else tokens_per_s * flops_per_token(config, seq_len) / peak


def _length_reward(responses, rows) -> list[float]:
    """A stand-in reward with variance: the response's length in characters (see the module docstring)."""
    return [float(len(r)) for r in responses]


def grpo_phase(check: Check, model, tok, sizes: Sizes, peak: float | None, engine: str = "hf") -> None:
    """GRPO with ``engine`` rollouts (HF: one audited step first), then ``grpo_steps`` timed ones."""
    from nemotron_cascade.data import world
    from nemotron_cascade.rl import trainer

    rows = world.generate_tasks("math", "rl", sizes.prompts * (sizes.grpo_steps + 1), 0)
    cfg = {"prompts_per_step": sizes.prompts, "group_size": sizes.group, "lr": 2e-6,
           "length_schedule": ((0, sizes.new_tokens),), "micro_batch_size": sizes.micro_batch,
           "rollout_batch_size": sizes.prompts * sizes.group, "overlong_filter": False, "dynamic_filter": False,
           "checkpoint_every": 10**9, "gradient_checkpointing": True, "rollout_engine": engine}
    if engine == "vllm":  # colocated: the trainer's cached blocks go back first, vLLM takes 30% of the GPU
        import torch

        torch.cuda.empty_cache()
        cfg["vllm"] = {"gpu_memory_utilization": 0.3, "max_model_len": 4096, "enforce_eager": True}

    def train(steps: int, **kw):
        return trainer.train_grpo(model, tok, rows, _length_reward, trainer.GRPOConfig(max_steps=steps, **cfg), None,
                                  world.render_prompt, **kw)
    if engine == "hf":
        audited(check, model, "grpo", lambda: train(1))
    with Phase(check.device) as p:
        hist = train(sizes.grpo_steps)
    check.findings += placement_findings(model, check.device, f"after grpo ({engine})")
    check.phases[f"grpo_{engine}"] = _grpo_metrics(hist, sizes, p, model.config, peak)


def _grpo_metrics(hist: list[dict], sizes: Sizes, p: Phase, config, peak: float | None) -> dict:
    """Rollout and update throughput of a GRPO run (update: each step's time minus its rollout)."""
    n = sizes.prompts * sizes.group
    seq = sum(h["prompt_length"] + h["response_length"] for h in hist) / len(hist)
    rollout_s = sum(h["rollout_share"] / h["steps_per_s"] for h in hist)
    update_s = sum((1 - h["rollout_share"]) / h["steps_per_s"] for h in hist)
    update_rate = n * seq * len(hist) / update_s
    return {"steps": len(hist), "tokens_per_s": update_rate, "peak_mib": p.peak_mib, "loss": hist[-1]["loss"],
            "rollout_tokens_per_s": sum(h["response_length"] for h in hist) * n / rollout_s,
            "mfu": _mfu(update_rate, config, seq, peak)}


def eval_phase(check: Check, model, tok, sizes: Sizes) -> None:
    """One audited evaluation pass of the evaluation node over every domain's benchmark rows."""
    from nemotron_cascade.data import world
    from nemotron_cascade.datasets.checkpoint import Checkpoint
    from nemotron_cascade.evaluation.benchmarks import EvalConfig
    from nemotron_cascade.pipelines.evaluation.nodes import evaluate_policy

    rows = [r for d in world.DOMAINS for r in world.generate_tasks(d, "bench", sizes.eval_items, 0)]
    cfg = EvalConfig(max_new_tokens=sizes.eval_tokens, max_items_per_domain=sizes.eval_items,
                     batch_size=len(rows), device=check.device)
    with Phase(check.device) as p:
        metrics, records = audited(check, model, "evaluation",
                                   lambda: evaluate_policy(Checkpoint(model, tok), rows, cfg))
    check.findings += placement_findings(model, check.device, "after evaluation")
    generated = metrics["response_length"] * len(records)
    check.phases["evaluation"] = {"steps": 1, "tokens_per_s": generated / p.seconds, "peak_mib": p.peak_mib,
                                  "loss": None, "mfu": None}


def vllm_importable() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # noqa: BLE001 (any import failure: not usable here)
        return False
    return True


def run(device: str, sizes: Sizes, dtype: str = "bfloat16", peak_tflops: float | None = None,
        vllm: bool | None = None) -> Check:
    """Build the model and run every phase on ``device``; the findings and measurements."""
    import torch

    from nemotron_cascade.training import placement

    tok, samples = build_tokenizer(sizes)
    model = build_model(tok, sizes, dtype)
    check, peak = Check(placement.resolve_device(device)), peak_flops(placement.resolve_device(device), peak_tflops)
    log.info("gpu_check: %.2f B parameters, %s, on %s", sum(p.numel() for p in model.parameters()) / 1e9, dtype,
             check.device)
    with placement.scope(device):
        sft_phase(check, model, tok, samples, sizes, peak)
        grpo_phase(check, model, tok, sizes, peak, "hf")
        if vllm if vllm is not None else (check.device.startswith("cuda") and vllm_importable()):
            grpo_phase(check, model, tok, sizes, peak, "vllm")
        eval_phase(check, model, tok, sizes)
    check.phases["model"] = {"parameters": sum(p.numel() for p in model.parameters()), "dtype": dtype,
                             "torch": torch.__version__}
    return check


def table(check: Check) -> str:
    """The measurements as a text table, then the findings."""
    def num(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    model = check.phases["model"]
    mixed = " (fp32 master weights, bf16 autocast)" if model["dtype"] == "bfloat16" else ""
    lines = [f"device {check.device}   model {model['parameters'] / 1e6:.1f} M parameters, {model['dtype']}{mixed}, "
             f"torch {model['torch']}",
             f"{'phase':<11} {'steps':>5} {'tokens/s':>10} {'rollout tok/s':>13} {'peak GPU MiB':>12} {'MFU':>6} "
             f"{'loss':>9}"]
    for name, ph in check.phases.items():
        if name == "model":
            continue
        lines.append(f"{name:<11} {ph['steps']:>5} {ph['tokens_per_s']:>10.0f} "
                     f"{num(ph.get('rollout_tokens_per_s'), '.0f'):>13} {num(ph['peak_mib'], '.0f'):>12} "
                     f"{num(ph['mfu'] and 100 * ph['mfu'], '.1f'):>6} {num(ph['loss'], '.4f'):>9}")
    lines.append("placement: every parameter, buffer and batch tensor on the device" if not check.findings else
                 "LEFT OFF THE DEVICE:\n  " + "\n  ".join(check.findings[:20]))
    return "\n".join(lines)


def failed(check: Check) -> bool:
    """Whether a check failed: a tensor off the device, or a training loss that is not finite."""
    import math

    losses = [ph["loss"] for n, ph in check.phases.items() if n.startswith(("sft", "grpo"))]
    return bool(check.findings) or not all(math.isfinite(x) for x in losses)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, auto or cpu (default cuda)")
    parser.add_argument("--tiny", action="store_true", help="a small model and short sequences (cpu's default)")
    parser.add_argument("--full", action="store_true", help="Qwen3-0.6B's shape even on the CPU")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--sft-steps", type=int, help="timed SFT steps (default: 6, tiny 3)")
    parser.add_argument("--grpo-steps", type=int, help="timed GRPO steps (default: 3, tiny 2)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, for MFU on an unlisted GPU")
    parser.add_argument("--no-vllm", action="store_true", help="skip the vLLM-rollout GRPO run")
    args = parser.parse_args(argv)
    import torch

    from nemotron_cascade.training import placement

    try:
        device = placement.resolve_device(args.device)
    except ValueError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    sizes = SMALL if args.tiny or (device == "cpu" and not args.full) else FULL
    steps = {k: v for k, v in (("sft_steps", args.sft_steps), ("grpo_steps", args.grpo_steps)) if v is not None}
    if any(v < 1 for v in steps.values()):
        parser.error("--sft-steps and --grpo-steps must be >= 1")
    torch.set_num_threads(min(2, torch.get_num_threads()) if device == "cpu" else torch.get_num_threads())
    sizes = replace(sizes, **steps)
    check = run(device, sizes, args.dtype, args.peak_tflops, False if args.no_vllm else None)
    print(table(check))
    return 1 if failed(check) else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(main())
