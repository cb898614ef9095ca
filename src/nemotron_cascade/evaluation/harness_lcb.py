"""LiveCodeBench as an lm-eval task: lm-eval 0.4.13 ships none, so the harness runs this config.

Data: livecodebench/code_generation_lite's ``test*.jsonl`` files (the project's source registry;
``data_files`` replaces them, e.g. with a local copy), optionally the problems of a contest-date
window (``since`` / ``until``, ISO dates: LiveCodeBench's versions are such windows). Prompt:
LiveCodeBench's stdin code-generation format (a fenced Python program reading stdin). Score
(``pass@1``, greedy): the project's code verifier (:mod:`nemotron_cascade.rewards.code`, the
sandbox) on the public and private tests.

Differences from LiveCodeBench's own runner, stated so a number is read right:

* only stdin/stdout problems are scored: LeetCode-style functional problems (``testtype:
  functional``) are left out (counted in the log), since the sandbox runs programs, not methods;
* private tests stored compressed (base64 / zlib / pickle of the JSON text in newer releases) are
  decoded with an unpickler that refuses every global, so only plain strings, lists and dicts can
  come out of it (a pickle that names any class or function is an error, never run);
* outputs are compared line by line as the RL verifier compares them (trailing whitespace off).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
import pickle
import zlib
from collections import Counter

log = logging.getLogger(__name__)

TASK = "livecodebench"
PROMPT = ("You will be given a question (problem specification) and will generate a correct Python program "
          "that matches the specification and passes all tests.\n\nQuestion: {question}\n\n"
          "Read the inputs from stdin, solve the problem and write the answer to stdout (do not directly test "
          "on the sample inputs). Enclose your code within delimiters as follows.\n```python\n# YOUR CODE HERE\n```")


class _PlainUnpickler(pickle.Unpickler):
    """An unpickler that builds only the basic types: every global (class, function) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused: the pickle names {module}.{name}")


def decode_tests(text: str) -> list:
    """A test-case column: JSON text, or LiveCodeBench's compressed form of it (base64 of zlib of a
    pickled JSON string), decoded without running anything (:class:`_PlainUnpickler`). A column that
    is neither is a ``RowError`` (the problem is left out, not scored on its public tests alone)."""
    from nemotron_cascade.data.sources.fields import RowError

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        data = zlib.decompress(base64.b64decode(text))
        inner = _PlainUnpickler(io.BytesIO(data)).load() if data[:1] == pickle.PROTO else data.decode()
        return json.loads(inner) if isinstance(inner, str) else inner
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as exc:
        raise RowError("private_test_cases", f"cannot be decoded ({type(exc).__name__}: {exc})") from None


def lcb_doc(raw: dict) -> dict:
    """One LiveCodeBench row as the task's document: the question and its tests (JSON text).
    Raises ``RowError`` for a row the verifier cannot score (a functional problem, no tests)."""
    from nemotron_cascade.data.sources.benchmarks import map_livecodebench

    raw = dict(raw)
    if isinstance(raw.get("private_test_cases"), str) and raw["private_test_cases"]:
        raw["private_test_cases"] = json.dumps(decode_tests(raw["private_test_cases"]))
    row = map_livecodebench(raw)
    return {"question_id": str(raw.get("question_id")), "question": row["prompt"],
            "tests": json.dumps(row["tests"]), "contest_date": str(raw.get("contest_date") or "")}


def in_window(raw: dict, since: str | None, until: str | None) -> bool:
    """Whether the problem's contest date lies in ``[since, until]`` (ISO dates; None: open)."""
    date = str(raw.get("contest_date") or "")[:10]
    return (since is None or date >= since) and (until is None or date <= until)


def process_docs(dataset, since: str | None = None, until: str | None = None):
    """The scorable problems of the window, as a ``datasets.Dataset`` of :func:`lcb_doc` documents."""
    import datasets

    from nemotron_cascade.data.sources.fields import RowError

    docs, skipped = [], Counter()
    for raw in dataset:
        if not in_window(raw, since, until):
            continue
        try:
            docs.append(lcb_doc(raw))
        except RowError as exc:
            skipped[exc.message.split(":")[0]] += 1
    if skipped:
        log.warning("livecodebench: %d problems left out (the verifier runs stdin programs): %s",
                    sum(skipped.values()), dict(skipped))
    if not docs:
        raise ValueError(f"livecodebench: no scorable problem in the window [{since}, {until}]")
    return datasets.Dataset.from_list(docs)


def doc_to_text(doc: dict) -> str:
    """The generation prompt of a document."""
    return PROMPT.format(question=doc["question"])


def process_results(doc: dict, results: list[str]) -> dict:
    """pass@1 of the (thinking-trimmed) response: 1.0 when its program passes every test."""
    from nemotron_cascade.rewards.code import code_reward

    return {"pass@1": code_reward(results[0], json.loads(doc["tests"]))}


def task_config(data_files=None, since: str | None = None, until: str | None = None) -> dict:
    """lm-eval's config dict of the task (``simple_evaluate(tasks=[...])`` takes it as it is)."""
    from nemotron_cascade.data.sources.registry import get_spec

    files = data_files if data_files is not None else list(get_spec(TASK).data_files)
    return {
        "task": TASK, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": files}},
        "test_split": "test", "output_type": "generate_until", "num_fewshot": 0,
        "process_docs": functools.partial(process_docs, since=since, until=until),
        "doc_to_text": doc_to_text, "doc_to_target": "", "process_results": process_results,
        "metric_list": [{"metric": "pass@1", "aggregation": "mean", "higher_is_better": True}],
        "generation_kwargs": {"until": [], "do_sample": False, "temperature": 0.0},
        "metadata": {"version": 1.0},
    }
