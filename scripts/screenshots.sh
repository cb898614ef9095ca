#!/usr/bin/env bash
# Screenshots of kedro-viz and the MLflow UI for the README (docs/*.png), taken offline with a
# headless Chromium (Debian: apt-get install chromium-headless-shell). Run after `make run`;
# `scripts/screenshots.sh /path/to/project` takes the MLflow ones from another project's mlflow.db
# (a `kedro run --env test` copy, say). The README shows:
#   docs/kedro-viz.png       the cascade DAG, each stage a namespace
#   docs/mlflow-runs.png     the latest cascade's parent run and its stage runs, in cascade order
#   docs/mlflow-parent.png   the parent run's matrix heatmap (its artifacts: the matrix table, the heatmap)
#   docs/mlflow-compare.png  MLflow's compare view of the eight stage runs (base ... swe_rl)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROJECT=$(cd "${1:-.}" && pwd)
BIN=$ROOT/.venv/bin
# MLflow's UI opens its assistant panel for a 127.0.0.1/localhost page only: the shots reach the same
# server under another name (mapped to 127.0.0.1 inside Chromium, allowed by the server)
SHOT=(chromium-headless-shell --no-sandbox --hide-scrollbars --window-size=1600,1000 --virtual-time-budget=20000
      "--host-resolver-rules=MAP mlflow.screenshot 127.0.0.1")
mkdir -p docs
cleanup() { kill "${VIZ_PID:-}" "${MLFLOW_PID:-}" 2>/dev/null || true; }
trap cleanup EXIT

KEDRO_DISABLE_TELEMETRY=true $BIN/kedro viz build >/dev/null
python3 -m http.server 4141 --bind 127.0.0.1 --directory build >/dev/null 2>&1 & VIZ_PID=$!
(cd "$PROJECT" && MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false exec $BIN/mlflow server \
  --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000 --workers 1 \
  --allowed-hosts "mlflow.screenshot:5000,127.0.0.1:5000" --cors-allowed-origins "http://mlflow.screenshot:5000" \
  >/dev/null 2>&1) & MLFLOW_PID=$!
for _ in $(seq 60); do curl -sf http://127.0.0.1:5000/health >/dev/null && break; sleep 1; done
# the latest cascade run (else the latest run of any pipeline) and its stage runs in cascade order
read -r EXP PARENT STAGES < <(cd "$PROJECT" && $BIN/python - <<'PY'
import json
import urllib.parse

import mlflow

client = mlflow.MlflowClient("sqlite:///mlflow.db")
experiments = [e.experiment_id for e in client.search_experiments()]
parents = client.search_runs(experiments, "tags.`kedro.pipeline` != ''", order_by=["attributes.start_time DESC"])
parent = next((r for r in parents if r.data.tags["kedro.pipeline"] in ("__default__", "cascade")), parents[0])
children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
position = {c.info.run_id: float(c.data.tags.get("cascade.position", "nan")) for c in children}
stages = sorted((r for r, p in position.items() if p >= 1 and p == int(p)), key=position.get)  # base .. swe_rl
print(parent.info.experiment_id, parent.info.run_id, urllib.parse.quote(json.dumps(stages)))
PY
)
# a same-origin page turns kedro-viz's onboarding tour off (localStorage) before opening the DAG
echo '<script>localStorage.setItem("KedroViz", JSON.stringify({showFeatureHints: false}));
location.replace("/");</script>' > build/_screenshot.html
shot() { "${SHOT[@]}" "--screenshot=$1" "$2" ${3:+"--window-size=$3"}; }  # file, URL, optional WxH
shot docs/kedro-viz.png "http://127.0.0.1:4141/_screenshot.html"
UI=http://mlflow.screenshot:5000/#
ORDER="orderByKey=metrics.%60cascade_position%60&orderByAsc=true"
CHILDREN=$(python3 -c "import urllib.parse; print(urllib.parse.quote(\"tags.mlflow.parentRunId = '$PARENT'\"))")
shot docs/mlflow-runs.png "$UI/experiments/$EXP/runs?searchFilter=$CHILDREN&$ORDER"
shot docs/mlflow-parent.png "$UI/experiments/$EXP/runs/$PARENT/artifacts/cascade_matrix.png"
shot docs/mlflow-compare.png "$UI/compare-runs?runs=$STAGES&experiments=%5B%22$EXP%22%5D" 2000,1500  # all 8 columns
ls -la docs/*.png
