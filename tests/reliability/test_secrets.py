"""Secrets: only in conf/local (git-ignored), never logged as an MLflow parameter, never printed by
the teachers; the local UIs bind to 127.0.0.1.

The MLflow check is real: ``StageTrackingHook`` logs a node's ``params:`` inputs into a sqlite
store under tmp_path, and the test reads the parameters back and greps the store's bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import socket
import subprocess
import types
from pathlib import Path

import pytest
import yaml

from nemotron_cascade.tracking.redaction import REDACTED, flatten, is_secret_key, redact
from nemotron_cascade.tracking.runs import StageTrackingHook

ROOT = Path(__file__).resolve().parents[2]

SECRETS = {  # value -> where it hides in the parameters below
    "sk-live-Sup3rSecret1": "teacher.backends.openai.api_key",
    "hf_Sup3rSecret2": "data.hf_token",
    "Sup3rSecret3": "credentials.openai.key",
    "Sup3rSecret4": "db.password",
    "Sup3rSecret5": "service.apiKey",
    "Sup3rSecret6": "oauth.client_secret",
    "Sup3rSecret7": "a URL's password",
    "sk-pasted-Sup3rSecret8": "api_key_env holding a key instead of a name",
}

PARAMS = {
    "teacher": {"backend": "openai", "backends": {"openai": {
        "base_url": "http://user:Sup3rSecret7@127.0.0.1:8000/v1", "model": "m", "api_key_env": "OPENAI_API_KEY",
        "api_key": "sk-live-Sup3rSecret1", "max_tokens": 4096}}},
    "data": {"hf_token": "hf_Sup3rSecret2", "tokenizer": {"vocab_size": 400}, "max_new_tokens": 64},
    "credentials": {"openai": {"key": "Sup3rSecret3"}},
    "db": {"password": "Sup3rSecret4", "host": "localhost"},
    "service": {"apiKey": "Sup3rSecret5"},
    "oauth": {"client_secret": "Sup3rSecret6"},
    "mistake": {"api_key_env": "sk-pasted-Sup3rSecret8"},
    "dedup": {"key": "prompt"},
}


# -- conf/local and the repository ------------------------------------------------------------------

def _git(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("path,ignored", [
    ("conf/local/credentials.yml", True), ("conf/local/mlflow.yml", True), ("conf/local/nested/credentials.yml", True),
    ("conf/local/.gitkeep", False), ("conf/base/catalog.yml", False),
])
def test_gitignore_covers_conf_local_except_its_gitkeep(path, ignored):
    proc = _git("check-ignore", "--no-index", "-q", path)  # read-only: asks the ignore rules only
    assert proc.returncode == (0 if ignored else 1), (path, proc.stderr)


def test_only_the_gitkeep_of_conf_local_is_tracked():
    assert _git("ls-files", "conf/local").stdout.split() == ["conf/local/.gitkeep"]


def test_no_credentials_or_secret_values_in_shared_conf():
    shared = [p for env in ("base", "gpu", "test") for p in (ROOT / "conf" / env).rglob("*") if p.is_file()]
    assert shared and not [p for p in shared if p.name.startswith("credentials")]
    found = []
    for path in shared:
        if path.suffix in (".yml", ".yaml"):
            for key, value in flatten("", yaml.safe_load(path.read_text()) or {}, {}).items():
                if redact(key, value) != value:
                    found.append(f"{path.relative_to(ROOT)}: {key}")
    assert found == []


def test_the_openai_teacher_config_holds_a_variable_name_only():
    conf = yaml.safe_load((ROOT / "conf/base/parameters_data_curation.yml").read_text())
    openai = conf["teacher"]["backends"]["openai"]
    assert "api_key" not in openai and "api_key_env" in openai
    assert openai["api_key_env"] is None or re.fullmatch(r"[A-Z_][A-Z0-9_]*", openai["api_key_env"])


# -- redaction rules --------------------------------------------------------------------------------

@pytest.mark.parametrize("key,secret", [
    ("api_key", True), ("openai.apiKey", True), ("hf_token", True), ("HF_TOKEN", True), ("access_token", True),
    ("auth.bearer", True), ("db.password", True), ("client_secret", True), ("credentials.anything", True),
    ("aws.secret_access_key", True), ("private_key", True), ("api_key_env", True),
    ("max_tokens", False), ("max_new_tokens", False), ("tokenizer.vocab_size", False), ("dedup.key", False),
    ("author", False), ("keywords", False), ("num_tokens_per_step", False),
])
def test_secret_keys(key, secret):
    assert is_secret_key(key) is secret


def test_every_real_parameter_key_is_logged_as_is():
    """The rules hide no parameter of this project: only api_key_env matches, and it holds a name."""
    for env in ("base", "test", "gpu"):
        params = {}
        for path in sorted((ROOT / "conf" / "base").glob("parameters*.yml")) + \
                sorted((ROOT / "conf" / env).glob("parameters*.yml")):
            params[f"{path.stem}-{path.parent.name}"] = yaml.safe_load(path.read_text()) or {}
        flat = flatten("", params, {})
        assert [k.split(".", 1)[1] for k, v in flat.items() if redact(k, v) != v] == []
        assert {k.split(".", 1)[1] for k in flat if is_secret_key(k)} <= {"teacher.backends.openai.api_key_env"}


def test_typed_configs_are_flattened_key_by_key_and_their_secrets_redacted():
    """A stage's typed config (a dataclass, with nested dataclasses) is logged one key per param,
    so a secret deep inside it (a launch env variable) is redacted like one in a mapping."""
    from nemotron_cascade.rl.config import GRPOConfig
    from nemotron_cascade.training.launch_config import LaunchConfig

    @dataclasses.dataclass(frozen=True)
    class Stage:
        reward: str
        train: GRPOConfig
        launch: LaunchConfig

    stage = Stage("math", GRPOConfig(lr=2e-6), LaunchConfig(env={"HF_TOKEN": "hf_abc123"}))
    flat = flatten("math_rl", stage, {})
    assert flat["math_rl.reward"] == "math" and flat["math_rl.train.lr"] == "2e-06"
    assert flat["math_rl.launch.env.HF_TOKEN"] == REDACTED
    assert not any("hf_abc123" in v for v in flat.values())


# -- the MLflow path --------------------------------------------------------------------------------

@pytest.fixture()
def tracked_run(tmp_path, monkeypatch):
    """Run the tracking hook for one node with PARAMS into a sqlite store; the store's client and runs."""
    import mlflow
    from kedro.pipeline import node

    monkeypatch.delenv("NEMOTRON_CASCADE_NO_MLFLOW", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # anything MLflow writes relative goes under tmp_path
    previous_uri = mlflow.get_tracking_uri()
    hook = StageTrackingHook()
    context = types.SimpleNamespace(project_path=tmp_path, env="test", config_loader={"mlflow": {"tracking": {
        "enabled": True, "tracking_uri": "sqlite:///mlflow.db", "experiment_name": "secrets"}}})
    the_node = node(lambda **kw: None, inputs={k: f"params:{k}" for k in PARAMS}, outputs=None,
                    name="generate_teacher_responses", tags=["stage.data_curation"])
    try:
        hook.after_context_created(context)
        hook.before_pipeline_run({"session_id": "s1", "pipeline_name": "data_curation"}, None, None)
        parent = hook._parent
        hook.before_node_run(the_node, {f"params:{k}": v for k, v in PARAMS.items()})
        hook.after_node_run(the_node)
        child = hook._children["data_curation"]
        hook.after_pipeline_run()
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous_uri)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, parent, child, tmp_path


def test_the_tracking_hook_never_logs_a_secret(tracked_run):
    client, parent, child, root = tracked_run
    params = client.get_run(child).data.params
    assert params["teacher.backends.openai.api_key"] == REDACTED
    assert params["data.hf_token"] == REDACTED
    assert params["credentials.openai.key"] == REDACTED
    assert params["db.password"] == REDACTED and params["db.host"] == "localhost"
    assert params["service.apiKey"] == REDACTED and params["oauth.client_secret"] == REDACTED
    assert params["mistake.api_key_env"] == REDACTED  # a key pasted where a variable name belongs
    # the design for secrets survives: the variable's *name* is logged, useful and harmless
    assert params["teacher.backends.openai.api_key_env"] == "OPENAI_API_KEY"
    assert params["teacher.backends.openai.base_url"] == f"http://user:{REDACTED}@127.0.0.1:8000/v1"
    # ordinary parameters with "token"/"key" in their names are kept
    assert params["teacher.backends.openai.max_tokens"] == "4096" and params["data.max_new_tokens"] == "64"
    assert params["data.tokenizer.vocab_size"] == "400" and params["dedup.key"] == "prompt"

    for run_id in (parent, child):
        run = client.get_run(run_id)
        logged = " ".join(list(run.data.params.values()) + list(run.data.tags.values()))
        assert not [s for s in SECRETS if s in logged]
    stored = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())  # the store itself, mlruns/...
    assert not [s for s in SECRETS if s.encode() in stored], "a secret reached the MLflow store"


# -- the teachers ---------------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_openai_teacher_never_prints_its_key(tmp_path, monkeypatch, caplog):
    from nemotron_cascade.data import teacher as teacher_data
    from nemotron_cascade.data import world
    from nemotron_cascade.generation.teachers import TeacherServerError, make_teacher

    secret = "sk-live-Sup3rSecret9"
    monkeypatch.setenv("NC_TEST_OPENAI_KEY", secret)
    options = {"base_url": f"http://127.0.0.1:{_closed_port()}/v1", "model": "m", "api_key_env": "NC_TEST_OPENAI_KEY",
               "max_retries": 1, "backoff_s": 0.0, "timeout_s": 5}
    caplog.set_level(logging.DEBUG)
    teacher = make_teacher("openai", **options)
    assert teacher.headers["Authorization"] == f"Bearer {secret}"  # it is used...
    row = world.generate_tasks("math", "sft", 1, 0)[0]
    with pytest.raises(TeacherServerError) as err:
        teacher.respond([row], [True], 1)
    texts = [caplog.text, str(err.value), repr(err.value.__cause__), repr(teacher.identity), repr(teacher),
             str(teacher_data.cache_path(tmp_path, "openai", teacher.identity, 1))]
    assert "attempt 1/2 failed" in caplog.text  # the failure was logged...
    assert not [t for t in texts if secret in t]  # ...and the key nowhere


@pytest.mark.parametrize("options,message", [
    ({"api_key_env": "sk-pasted-Sup3rSecret8"}, "api_key_env must be the *name* of an environment variable"),
    ({"api_key_env": "NC_TEST_UNSET_VARIABLE"}, "names $NC_TEST_UNSET_VARIABLE, which is not set"),
    ({"api_key": "sk-pasted-Sup3rSecret8"}, "bad options"),
])
def test_a_misplaced_key_is_refused_without_being_echoed(monkeypatch, caplog, options, message):
    from nemotron_cascade.generation.teachers import make_teacher

    monkeypatch.delenv("NC_TEST_UNSET_VARIABLE", raising=False)
    caplog.set_level(logging.DEBUG)
    with pytest.raises((TypeError, ValueError)) as err:
        make_teacher("openai", base_url="http://127.0.0.1:9/v1", model="m", **options)
    assert message in str(err.value)
    assert "Sup3rSecret8" not in str(err.value) + caplog.text


# -- the Makefile's servers -------------------------------------------------------------------------

def _recipe(target: str) -> str:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{target}\s*:", line))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        body.append(line.strip())
    return " ".join(body)


@pytest.mark.parametrize("target,command", [("viz", "kedro viz run"), ("mlflow", "mlflow server")])
def test_the_local_uis_bind_to_loopback(target, command):
    recipe = _recipe(target)
    assert command in recipe
    hosts = re.findall(r"--host[ =](\S+)", recipe)
    assert hosts == ["127.0.0.1"], recipe  # an explicit loopback bind, nothing else
    assert "0.0.0.0" not in recipe and "::" not in recipe


def test_the_local_teacher_server_binds_to_loopback_by_default():
    import inspect

    from nemotron_cascade.generation import serve

    assert inspect.signature(serve.make_server).parameters["host"].default == "127.0.0.1"
    assert '"--host", default="127.0.0.1"' in inspect.getsource(serve)
