"""Bad input in every catalogued JSON-lines dataset: each case is named with file, row and field
(``on_error: raise``) or comes back as a quarantine record with file, row and reason
(``on_error: quarantine``, the ``raw.<domain>`` files); nothing crashes elsewhere, nothing is
dropped silently.

The schemas come from ``conf/base/catalog.yml`` itself, so a dataset added there is covered here.
Decision on an empty file: zero rows, not an error (the gpu profile's ``raw.general`` is empty by
design: no general source), but never silent: ``curate_tasks`` logs it and the data card lists
the domain; a raw file whose every row is quarantined stops the run.
"""

from __future__ import annotations

import json
import logging
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from nemotron_cascade.data import curation, world
from nemotron_cascade.data import sft as sft_data
from nemotron_cascade.data.schemas import SCHEMAS
from nemotron_cascade.datasets import DataValidationError, JsonlDataset
from nemotron_cascade.datasets.jsonl import DEFAULT_MAX_ROW_BYTES

ROOT = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((ROOT / "conf/base/catalog.yml").read_text())


def _catalog_schemas() -> dict[str, set[str]]:
    """schema -> the on_error modes of the JsonlDataset entries using it (``{domain}`` expanded)."""
    out: dict[str, set[str]] = {}
    for entry in CATALOG.values():
        if isinstance(entry, dict) and entry.get("type", "").endswith("JsonlDataset") and entry.get("schema"):
            names = [entry["schema"].replace("{domain}", d) for d in world.DOMAINS] \
                if "{domain}" in entry["schema"] else [entry["schema"]]
            for name in names:
                out.setdefault(name, set()).add(entry.get("on_error", "raise"))
    return out


CATALOG_SCHEMAS = _catalog_schemas()


def _good_rows() -> dict[str, dict]:
    tasks = {d: world.generate_tasks(d, "sft", 1, 0)[0] for d in world.DOMAINS}
    sample = sft_data.teacher_samples([tasks["tool_calling"]], 1.0, 0.0, 0, world.oracle_response)[0]
    rows = {f"task.{d}": t for d, t in tasks.items()}
    rows |= {"task": tasks["math"], "sft_sample": sample,
             "preference_pair": {"id": "p1", "prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."}}
    return rows


GOOD = _good_rows()


def test_every_catalogued_schema_is_covered_and_raw_files_quarantine():
    assert set(CATALOG_SCHEMAS) == {f"task.{d}" for d in world.DOMAINS} | {"task", "sft_sample", "preference_pair"}
    assert set(CATALOG_SCHEMAS) <= set(SCHEMAS) <= set(GOOD)
    assert {s for s, modes in CATALOG_SCHEMAS.items() if "quarantine" in modes} == {f"task.{d}" for d in world.DOMAINS}
    assert CATALOG["raw.{domain}"]["on_error"] == "quarantine"
    assert all(e.get("on_error", "raise") == "raise" for n, e in CATALOG.items()
               if isinstance(e, dict) and e.get("type", "").endswith("JsonlDataset") and n != "raw.{domain}")
    assert CATALOG["quarantine"]["type"].endswith("JsonlDataset") and "schema" not in CATALOG["quarantine"]


# -- the table: (case, bad line, expected phrase of the reason, why it matters) ---------------------

def _line(schema: str, **changes) -> bytes:
    row = {**GOOD[schema], **changes}
    return json.dumps({k: v for k, v in row.items() if v is not _DROP}).encode()


_DROP = object()

GENERIC = [
    ("malformed JSON", lambda s: b'{"id": "x", "domain": ', "invalid JSON", "a torn or hand-edited line"),
    ("truncated row", lambda s: _line(s)[:-7], "invalid JSON", "a row cut by a kill or a full disk"),
    ("JSON array", lambda s: b"[" + _line(s) + b"]", "expected a JSON object, got list", "rows are objects"),
    ("JSON string", lambda s: b'"just text"', "expected a JSON object, got str", "rows are objects"),
    ("JSON null", lambda s: b"null", "expected a JSON object, got NoneType", "rows are objects"),
    ("non-UTF-8 bytes", lambda s: b'{"id": "\xff\xfe latin-1 \xe9"}', "not valid UTF-8", "a file in another encoding"),
    ("UTF-8 BOM", lambda s: b"\xef\xbb\xbf" + _line(s), "invalid JSON (Unexpected UTF-8 BOM",
     "a file saved by an editor that adds a BOM"),
    ("NUL bytes", lambda s: b"\x00\x00\x00", "invalid JSON", "a preallocated or corrupt block"),
    ("deep nesting", lambda s: b"[" * 100_000 + b"]" * 100_000, "nested too deeply",
     "was a RecursionError crashing the whole load"),
    ("huge integer", lambda s: b'{"id": ' + b"7" * 5000 + b"}", "invalid JSON (Exceeds the limit",
     "was a ValueError (int max str digits) crashing the whole load"),
    ("empty object", lambda s: b"{}", "missing field 'id'", "every field missing"),
]


def _field_cases():
    """Per schema and required field: missing, and of the wrong type (and list elements)."""
    wrong = {str: 7, dict: ["not", "an", "object"], list: "not a list", bool: "yes"}
    for schema in sorted(CATALOG_SCHEMAS):
        spec = SCHEMAS[schema]
        for field, kind in spec.items():
            outer, inner = kind if isinstance(kind, tuple) else (kind, None)
            yield schema, f"missing {field}", _line(schema, **{field: _DROP}), f"missing field '{field}'"
            yield schema, f"wrong type {field}", _line(schema, **{field: wrong[outer]}), f"field '{field}' must be"
            if outer is str:
                yield schema, f"blank {field}", _line(schema, **{field: "  "}), \
                    None if field == "rejected" else f"field '{field}' must be a string (non-empty)"
            if inner is not None:
                yield schema, f"bad element {field}", _line(schema, **{field: [3]}), f"field '{field}'[0] must be"


FIELD_CASES = list(_field_cases())

# What downstream code indexes without checking: caught here, with file and row, instead of in
# chat.render (messages), the code verifier (tests) or curation (a row filed under another domain).
DEEP_CASES = [
    ("sft_sample", "empty messages", dict(messages=[]), "field 'messages' must be a non-empty list"),
    ("sft_sample", "message without content", dict(messages=[{"role": "user"}]),
     "field 'messages'[0] misses 'content'"),
    ("sft_sample", "message content not text", dict(messages=[{"role": "user", "content": None}]),
     "field 'messages'[0].content must be a string"),
    ("sft_sample", "unknown role", dict(messages=[{"role": "robot", "content": "hi"}]),
     "field 'messages'[0].role must be one of"),
    ("task.code", "test without output", dict(tests=[{"input": "1\n"}]), "field 'tests'[0] misses 'output'"),
    ("task.code", "test input not text", dict(tests=[{"input": 1, "output": "1\n"}]),
     "field 'tests'[0].input must be a string"),
    ("task.math", "row of another domain", dict(domain="code"), "field 'domain' must be 'math'"),
    ("task", "unknown domain", dict(domain="chemistry"), "field 'domain' must be one of"),
]


def _cases():
    for schema in sorted(CATALOG_SCHEMAS):
        for name, make, phrase, _why in GENERIC:
            yield pytest.param(schema, make(schema), phrase, id=f"{schema}-{name}")
    for schema, name, line, phrase in FIELD_CASES:
        if phrase is not None:
            yield pytest.param(schema, line, phrase, id=f"{schema}-{name}")
    for schema, name, changes, phrase in DEEP_CASES:
        yield pytest.param(schema, _line(schema, **changes), phrase, id=f"{schema}-{name}")


CASES = list(_cases())


@pytest.mark.parametrize("schema,bad,phrase", CASES)
def test_bad_line_is_named_or_quarantined(tmp_path, schema, bad, phrase):
    good = json.dumps(GOOD[schema]).encode()
    path = tmp_path / f"{schema}.jsonl"
    path.write_bytes(b"\n".join([good, b"  \t", bad, good]) + b"\n")  # the bad line is row 3

    with pytest.raises(DataValidationError) as err:
        JsonlDataset(str(path), schema=schema).load()
    assert f"{path}: row 3: " in str(err.value) and phrase in str(err.value)

    rows = JsonlDataset(str(path), schema=schema, on_error="quarantine").load()
    kept, bad_records = curation.quarantine(rows, f"raw.{schema}")
    assert kept == [GOOD[schema], GOOD[schema]]  # nothing else lost, blank line skipped
    assert len(bad_records) == 1
    record = bad_records[0]
    assert record["file"] == str(path) and record["row"] == 3 and phrase in record["reason"]
    assert record["source"] == f"raw.{schema}" and len(record["text"]) <= 2000


def test_the_table_is_large_and_every_schema_gets_every_generic_case():
    per_schema = {s: sum(1 for c in CASES if c.values[0] == s) for s in CATALOG_SCHEMAS}
    assert min(per_schema.values()) >= len(GENERIC) + 8  # generic cases plus >= 2 per field of 4 fields
    assert len(CASES) >= 200


@pytest.mark.parametrize("schema", sorted(CATALOG_SCHEMAS))
def test_blank_lines_and_crlf_are_not_rows(tmp_path, schema):
    good = json.dumps(GOOD[schema]).encode()
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\r\n\n" + good + b"\r\n \t \n\n" + good)  # CRLF, whitespace-only, no final newline
    assert JsonlDataset(str(path), schema=schema).load() == [GOOD[schema]] * 2


@pytest.mark.parametrize("schema", sorted(CATALOG_SCHEMAS))
@pytest.mark.parametrize("content", [b"", b"\n\n  \n"], ids=["empty", "blank-only"])
def test_an_empty_file_is_zero_rows_in_both_modes(tmp_path, schema, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    assert JsonlDataset(str(path), schema=schema).load() == []
    assert JsonlDataset(str(path), schema=schema, on_error="quarantine").load() == []


def test_a_good_row_with_a_reserved_key_is_not_taken_for_an_error_record(tmp_path):
    """Only the dataset writes ``_error``: a row that merely validates passes through."""
    row = {**GOOD["task.math"], "notes": "_error"}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(row) + "\n")
    rows = JsonlDataset(str(path), schema="task.math", on_error="quarantine").load()
    kept, bad = curation.quarantine(rows, "raw.math")
    assert kept == [row] and bad == []


# -- a 50 MB row --------------------------------------------------------------------------------

def _big_row_file(path: Path, size: int) -> None:
    """One math task whose prompt is ``size`` bytes of text, written without holding it twice."""
    rest = {k: v for k, v in GOOD["task.math"].items() if k != "prompt"}
    chunk = b"word " * (2**20 // 5)
    with open(path, "wb") as f:
        f.write(json.dumps(rest)[:-1].encode() + b', "prompt": "')
        for _ in range(size // len(chunk) + 1):
            f.write(chunk)
        f.write(b'"}\n' + json.dumps(GOOD["task.math"]).encode() + b"\n")  # row 2: a normal row


def test_a_50_mb_row_loads_under_the_default_limit_quickly(tmp_path):
    assert DEFAULT_MAX_ROW_BYTES >= 50 * 2**20
    path = tmp_path / "big.jsonl"
    _big_row_file(path, 50 * 2**20)
    start = time.monotonic()
    rows = JsonlDataset(str(path), schema="task.math").load()
    assert time.monotonic() - start < 10
    assert len(rows) == 2 and len(rows[0]["prompt"]) >= 50 * 2**20 - 2**20


@pytest.mark.parametrize("on_error", ["raise", "quarantine"])
def test_a_row_over_max_row_bytes_is_a_clear_error_read_no_further(tmp_path, on_error):
    path = tmp_path / "big.jsonl"
    _big_row_file(path, 50 * 2**20)
    ds = JsonlDataset(str(path), schema="task.math", on_error=on_error, max_row_bytes=2**20)
    tracemalloc.start()
    try:
        if on_error == "raise":
            with pytest.raises(DataValidationError) as err:
                ds.load()
            message = str(err.value)
        else:
            kept, bad = curation.quarantine(ds.load(), "raw.math")
            assert kept == [GOOD["task.math"]] and [b["row"] for b in bad] == [1]
            message = f"{bad[0]['file']}: row {bad[0]['row']}: {bad[0]['reason']}"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"{path}: row 1: longer than max_row_bytes=1048576" in message
    assert peak < 8 * 2**20  # the 50 MB line was never held whole


def test_max_row_bytes_is_checked_and_exactly_the_limit_passes(tmp_path):
    with pytest.raises(Exception, match="max_row_bytes must be >= 1"):
        JsonlDataset(str(tmp_path / "x.jsonl"), max_row_bytes=0)
    line = json.dumps(GOOD["task.math"]).encode()
    (tmp_path / "x.jsonl").write_bytes(line + b"\n" + line)
    assert len(JsonlDataset(str(tmp_path / "x.jsonl"), schema="task.math", max_row_bytes=len(line)).load()) == 2
    with pytest.raises(DataValidationError, match="row 1: longer than max_row_bytes"):
        JsonlDataset(str(tmp_path / "x.jsonl"), schema="task.math", max_row_bytes=len(line) - 1).load()


def test_rows_that_cannot_be_written_are_named(tmp_path):
    ds = JsonlDataset(str(tmp_path / "out.jsonl"))
    with pytest.raises(DataValidationError, match=r"row 2 \(to be written\): not JSON-serialisable"):
        ds.save([{"a": 1}, {"a": {1, 2}}])
    with pytest.raises(DataValidationError, match=r"row 1 \(to be written\): expected a dict, got list"):
        ds.save([[1, 2]])
    assert list(tmp_path.iterdir()) == []


# -- end to end through the nodes ------------------------------------------------------------------

def _curation_params() -> dict:
    params = yaml.safe_load((ROOT / "conf/base/parameters_data_curation.yml").read_text())["curation"]
    return {"item_fields": params["item_fields"], "decontamination": {"n": params["decontamination"]["n"]},
            "dedup": params["dedup"], "external_benchmarks": []}


def _raw_files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for domain in world.DOMAINS:
        rows = world.generate_tasks(domain, "sft", 3, 0) + world.generate_tasks(domain, "bench", 1, 0)
        path = tmp_path / f"{domain}.jsonl"
        JsonlDataset(str(path), schema=f"task.{domain}").save(rows)
        out[domain] = path
    return out


def _card(curated, removed, quarantined, stats):
    import matplotlib.pyplot as plt

    from nemotron_cascade.pipelines.data_curation import nodes

    prompts = [r for r in curated if r["split"] == "sft"][:7]
    samples = sft_data.teacher_samples(prompts, 0.5, 0.0, 0, world.oracle_response)
    markdown, figure, table = nodes.build_data_card(stats, curated, removed, quarantined, samples, samples, [], {},
                                                    samples, samples)
    plt.close(figure)
    return markdown, table


def test_a_quarantined_raw_row_reaches_the_quarantine_output_and_the_data_card(tmp_path, caplog):
    from nemotron_cascade.pipelines.data_curation import nodes

    files = _raw_files(tmp_path)
    math = files["math"]
    lines = math.read_text().splitlines()
    lines.insert(1, json.dumps({**json.loads(lines[1]), "answer": 42}))  # row 2: wrong type
    math.write_text("\n".join(lines) + "\n")

    raw = {d: JsonlDataset(str(p), schema=f"task.{d}", on_error="quarantine").load() for d, p in files.items()}
    with caplog.at_level(logging.WARNING, logger="nemotron_cascade.pipelines.data_curation.nodes"):
        curated, removed, quarantined, stats = nodes.curate_tasks(**_curation_params(), **raw)
    assert quarantined == [{"source": "raw.math", "file": str(math), "row": 2,
                            "reason": "field 'answer' must be a string (non-empty), got int", "text": lines[1]}]
    assert f"quarantined {math} row 2" in caplog.text
    assert len([r for r in curated if r["domain"] == "math"]) == 4  # the three good rows and the bench row

    # the quarantine output round-trips through its catalogued dataset, and the card counts it
    JsonlDataset(str(tmp_path / "quarantine.jsonl")).save(quarantined)
    assert JsonlDataset(str(tmp_path / "quarantine.jsonl")).load() == quarantined
    markdown, _ = _card(curated, removed, quarantined, stats)
    assert "## Quarantine: 1 malformed rows" in markdown
    assert f"- {math} row 2: field 'answer' must be a string" in markdown


def test_an_empty_raw_domain_is_logged_and_noted_on_the_card(tmp_path, caplog):
    from nemotron_cascade.pipelines.data_curation import nodes

    files = _raw_files(tmp_path)
    files["general"].write_bytes(b"")
    raw = {d: JsonlDataset(str(p), schema=f"task.{d}", on_error="quarantine").load() for d, p in files.items()}
    with caplog.at_level(logging.WARNING, logger="nemotron_cascade.pipelines.data_curation.nodes"):
        curated, removed, quarantined, stats = nodes.curate_tasks(**_curation_params(), **raw)
    assert "raw.general has no rows" in caplog.text
    assert stats["empty_domains"] == ["general"] and not any(r["domain"] == "general" for r in curated)
    markdown, _ = _card(curated, removed, quarantined, stats)
    assert "## Empty domains" in markdown and "general: the raw file had no rows" in markdown


def test_a_raw_file_with_every_row_quarantined_stops_curation(tmp_path):
    from nemotron_cascade.pipelines.data_curation import nodes

    files = _raw_files(tmp_path)
    files["science"].write_text("{broken\n[1]\n")
    raw = {d: JsonlDataset(str(p), schema=f"task.{d}", on_error="quarantine").load() for d, p in files.items()}
    with pytest.raises(ValueError, match=rf"raw.science: all 2 rows of {files['science']} were quarantined "
                                         r"\(row 1: invalid JSON"):
        nodes.curate_tasks(**_curation_params(), **raw)
