# Two-command quick start: `make run` (whole cascade, embedded default) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# what running needs (pyproject's dependencies), and the test extra on top (pytest, the notebook
# check, DeepSpeed for the parity tests, ruff): `make run` installs only the first. Both under the
# CPU environment's constraints (requirements/cpu.txt: the CPU torch wheel, transformers, numba);
# the GPU environment installs from requirements/gpu.txt instead (docs/scale_out.md)
CONSTRAINTS := requirements/cpu.txt
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
export KEDRO_DISABLE_TELEMETRY := true
export MLFLOW_ALLOW_FILE_STORE := false

.PHONY: setup setup-test run test lint viz mlflow clean

setup: $(STAMP)

setup-test: $(TEST_STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e . -c $(CONSTRAINTS)
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test]' -c $(CONSTRAINTS)
	touch $(TEST_STAMP)

run: setup
	$(BIN)/kedro run $(ARGS)

lint: setup-test
	$(BIN)/ruff check

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

viz: setup
	$(BIN)/kedro viz run --host 127.0.0.1 --no-browser

mlflow: setup
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000 --workers 1

clean:
	rm -rf data/0*/* mlflow.db mlflow.db.init.lock mlruns mlartifacts
