#!/usr/bin/env bash
# Screenshots of kedro-viz and the MLflow UI for the README (docs/*.png), taken offline with a
# headless Chromium (Debian: apt-get install chromium-headless-shell). Run after `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SHOT="chromium-headless-shell --no-sandbox --hide-scrollbars --window-size=1600,1000 --virtual-time-budget=20000"
mkdir -p docs
cleanup() { kill "${VIZ_PID:-}" "${MLFLOW_PID:-}" 2>/dev/null || true; }
trap cleanup EXIT

KEDRO_DISABLE_TELEMETRY=true $BIN/kedro viz build >/dev/null
python3 -m http.server 4141 --bind 127.0.0.1 --directory build >/dev/null 2>&1 & VIZ_PID=$!
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $BIN/mlflow server --backend-store-uri sqlite:///mlflow.db \
  --host 127.0.0.1 --port 5000 --workers 1 >/dev/null 2>&1 & MLFLOW_PID=$!
for _ in $(seq 60); do curl -sf http://127.0.0.1:5000/health >/dev/null && break; sleep 1; done
EXP=$($BIN/python - <<'PY'
import mlflow
print(mlflow.MlflowClient("sqlite:///mlflow.db").get_experiment_by_name("nemotron-cascade").experiment_id)
PY
)
# a same-origin page turns kedro-viz's onboarding tour off (localStorage) before opening the DAG
echo '<script>localStorage.setItem("KedroViz", JSON.stringify({showFeatureHints: false}));
location.replace("/");</script>' > build/_screenshot.html
$SHOT --screenshot=docs/kedro-viz.png "http://127.0.0.1:4141/_screenshot.html"
$SHOT --screenshot=docs/mlflow-runs.png "http://127.0.0.1:5000/#/experiments/$EXP/runs"
ls -la docs/*.png
