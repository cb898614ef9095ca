#!/usr/bin/env bash
# A few minutes on one GPU, nothing fetched: SFT and GRPO steps of the tiny model on the GPU beside
# a CPU twin; prints tokens/s, peak GPU memory and loss parity. Exit 0 parity, 1 mismatch, 2 no GPU.
# Extra arguments go to `python -m nemotron_cascade.gpu_check` (e.g. --sft-steps 50 --device cuda:1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
export KEDRO_DISABLE_TELEMETRY=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU found (nvidia-smi missing or sees none); for the CPU code path run:" >&2
  echo "  $PY -m nemotron_cascade.gpu_check --device cpu" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec timeout 600 "$PY" -m nemotron_cascade.gpu_check "$@"
