#!/usr/bin/env bash
# One GPU, a few minutes (<= 8 on one H100), nothing fetched: a random-initialised model of Qwen3-0.6B's
# shape through the project's own SFT (packed 16K-token blocks, gradient checkpointing), GRPO (HF
# rollouts, and vLLM rollouts when vLLM imports) and evaluation, in bf16 with fp32 master weights.
# Prints tokens/s, peak GPU memory and MFU per phase; fails naming any parameter, buffer or batch
# tensor left on the CPU. Exit 0 ok, 1 a tensor off the device or a non-finite loss, 2 no GPU.
# Extra arguments go to `python -m nemotron_cascade.gpu_check` (e.g. --device cuda:1 --sft-steps 10
# --peak-tflops 989); `--device cpu` is the CPU mode (small sizes, tests/test_gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
export KEDRO_DISABLE_TELEMETRY=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [[ " $* " != *" --device cpu "* ]]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU found (nvidia-smi missing or sees none); for the CPU code path run:" >&2
    echo "  $0 --device cpu" >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
exec timeout 480 "$PY" -m nemotron_cascade.gpu_check "$@"
