"""The paper's public data sources, mapped onto our per-domain task schemas (``schemas.py``).

One module per concern: :mod:`.fields` (reading columns, :class:`RowError`, reference responses),
the mappers of :mod:`.math`, :mod:`.code`, :mod:`.science`, :mod:`.general`,
:mod:`.instruction_following`, :mod:`.swe`, :mod:`.tool_calling` and :mod:`.benchmarks`, and
:mod:`.registry` (:class:`SourceSpec`, :data:`SOURCES`, :data:`BENCHMARKS`, :func:`map_rows`,
:func:`load_source`); every public name is importable from this package.

One mapper per source turns a raw row, exactly as ``datasets.load_dataset`` yields it, into the
fields of a ``task.<domain>`` row; :func:`map_rows` adds ``id``/``domain``/``split``/``source`` and
validates the result. A row that cannot be mapped is never dropped silently: it becomes a *reject*
``{"source", "row", "field", "reason", "raw_id", "kind"}`` that the caller can quarantine
(``kind`` is ``"invalid"``, or ``"duplicate"`` for a second row of the same task, e.g. one more
teacher solution of the same OpenMathReasoning problem).

=======================  ==========================================  =========================================
name                     HF dataset (config / split)                 domain, what the mapper reads
=======================  ==========================================  =========================================
acemath_instruct         nvidia/AceMath-Instruct-Training-Data       math: ``messages``, ``answer``
                         (math_sft)
numina_math_cot          AI-MO/NuminaMath-CoT (train)                math: ``problem``, ``\\boxed{}`` of ``solution``
open_math_reasoning      nvidia/OpenMathReasoning (cot)              math: ``problem``, ``expected_answer``
taco                     BAAI/TACO (ALL/train parquet)               code: ``question``, ``input_output``
apps                     codeparrot/apps (train.jsonl)               code: ``question``, ``input_output``
open_code_reasoning      nvidia/OpenCodeReasoning (split_0)          code (SFT only, no tests): ``input``
s1k                      simplescaling/s1K (train)                   science: ``question``, ``solution``
llama_nemotron_science   nvidia/Llama-Nemotron-Post-Training-        science: ``input``, ``output``
                         Dataset (SFT / science)
swe_bench_train          princeton-nlp/SWE-bench (train)            swe: ``problem_statement``, ``patch``
swe_smith                SWE-bench/SWE-smith (train)                 swe: ``problem_statement``, reversed ``patch``
swe_fixer                internlm/SWE-Fixer-Train-110K (train)       swe: ``problem_statement``, ``patch``
swe_rebench              nebius/SWE-rebench (test: the whole set)    swe: ``problem_statement``, ``patch``
xlam_function_calling    Salesforce/xlam-function-calling-60k        tool_calling: ``query``, ``tools``, ``answers``
llama_nemotron_chat      nvidia/Llama-Nemotron-Post-Training-        general (SFT, RLHF prompts): ``input``,
                         Dataset (SFT / chat)                        ``output``, ``category``
llama_nemotron_safety    nvidia/Llama-Nemotron-Post-Training-        general (SFT): ``input``, ``output``,
                         Dataset (SFT / safety)                      ``category``
helpsteer3               nvidia/HelpSteer3 (preference / train)      general (reward-model pairs): ``context``,
                                                                     ``response1/2``, ``overall_preference``
if_multi_constraints     allenai/IF_multi_constraints_upto5 (train)  instruction_following (IF-RL): ``messages``,
                                                                     ``ground_truth``
=======================  ==========================================  =========================================

Benchmarks (:data:`BENCHMARKS`, decontamination reads their ``text_fields``; their mappers make
``bench`` rows): AIME 2024, AIMO AIME validation, MATH-500, GPQA-diamond, LiveCodeBench
(code_generation_lite), IFEval, SWE-bench Verified.

Decisions worth knowing:

* **Reference responses**: a training source that carries a response gives it as
  ``reference_responses`` — ``{"thinking": <think> trace then answer}`` and/or ``{"plain": answer}``
  in the project's chat format, non-empty strings only (:func:`references`); the ``dataset``
  teacher reads exactly this field. Only the mode the source wrote is given (an R1 trace is never
  cut to a ``plain`` answer). Sources without a response (SWE, the IF prompts, benchmarks) have no
  such field.
* **General** rows hold one user prompt: multi-turn conversations are rejected. HelpSteer3 rows
  carry their pair (``chosen`` / ``rejected`` by the sign of ``overall_preference``; ties rejected)
  and always land in ``sft``, where the reward model's pairs are read; Llama-Nemotron rows carry
  ``chosen`` (the response) and an empty ``rejected``.
* **Instruction following** trains on ``if_multi_constraints`` (IFEval stays the ``bench``
  benchmark): a row whose constraint the project's verifier does not check is rejected, naming it.
  IF rows also carry ``task_text`` (the request without the constraint sentences, which IFEval's
  prompts share): decontaminate instruction following on ``[task_text, kwargs]``.

* **Code** tasks keep only stdin/stdout problems (our verifier runs programs on stdin): a TACO/APPS
  ``input_output`` with ``fn_name`` (call-based, LeetCode/Codewars style) is rejected with that reason,
  and so is a LiveCodeBench problem with ``functional`` tests. OpenCodeReasoning has no tests at all:
  its rows get ``tests: []`` and ``verifiable: False`` and always land in the ``sft`` split (the code
  verifier refuses an empty test list, so they must never reach RL).
* **Science** tasks are multiple choice (``choices`` + a letter ``answer``) when the question lists
  lettered options; otherwise they are free-form (``choices: []``, ``answer_format: "free_form"``,
  the answer read from ``\\boxed{}``): fine as SFT prompts, not gradable by ``science_reward``.
* **SWE** tasks from real repositories cannot carry the repository: ``repo`` is ``{}`` (not
  hydrated), ``repo_name`` + ``base_commit`` say where to fetch it, ``files`` are the files the gold
  patch touches (parsed with ``unidiff``) and ``file`` the one it changes most. A hydration step
  (checkout at ``base_commit``, read ``files`` and BM25 candidates) must fill ``repo`` before
  localisation / ``world.swe_prompt``. SWE-smith's ``patch`` *introduces* the bug (SWE-smith's
  ``harness/gather.py`` applies it to build the buggy branch, whose commit is ``base_commit``), so
  the gold fix is its reverse (:func:`reverse_patch`).
* Splits: benchmark rows are ``bench``; training rows are ``rl`` for a stable ``rl_share`` of their
  keys (a hash of the prompt, or of the native id for SWE) and ``sft`` otherwise.
* Ids are ``<source>-<sha1(key)[:12]>``: stable across runs, equal for the same problem.

Scripted repositories (TACO, APPS, LiveCodeBench) are read through the packaged ``json`` /
``parquet`` builders on their ``hf://`` data files, because ``datasets`` >= 4 refuses loading scripts.
"""


from __future__ import annotations

from nemotron_cascade.data.sources.benchmarks import map_aime, map_gpqa, map_ifeval, map_livecodebench, map_math500
from nemotron_cascade.data.sources.code import map_apps, map_open_code_reasoning, map_taco, parse_io_tests
from nemotron_cascade.data.sources.fields import LETTERS, RowError, boxed_answer, clean_answer, references
from nemotron_cascade.data.sources.general import (
    map_helpsteer3_preference,
    map_llama_nemotron_chat,
    map_llama_nemotron_safety,
)
from nemotron_cascade.data.sources.instruction_following import map_if_multi_constraints
from nemotron_cascade.data.sources.math import map_acemath_instruct, map_numina_math_cot, map_open_math_reasoning
from nemotron_cascade.data.sources.registry import (
                                                    BENCHMARKS,
                                                    SOURCES,
                                                    SourceSpec,
                                                    benchmark_texts,
                                                    get_spec,
                                                    iter_raw_rows,
                                                    load_benchmark_texts,
                                                    load_source,
                                                    map_rows,
                                                    stable_hash,
)
from nemotron_cascade.data.sources.science import map_llama_nemotron_science, map_s1k, parse_choices
from nemotron_cascade.data.sources.swe import (
                                                    DEV_NULL,
                                                    check_real_swe_task,
                                                    map_swe_bench,
                                                    map_swe_fixer,
                                                    map_swe_smith,
                                                    patch_files,
                                                    reverse_patch,
)
from nemotron_cascade.data.sources.tool_calling import map_xlam_function_calling

__all__ = [
    "BENCHMARKS", "DEV_NULL", "LETTERS", "SOURCES", "RowError", "SourceSpec", "benchmark_texts", "boxed_answer",
    "check_real_swe_task", "clean_answer", "get_spec", "iter_raw_rows", "load_benchmark_texts", "load_source",
    "map_acemath_instruct", "map_aime", "map_apps", "map_gpqa", "map_helpsteer3_preference", "map_if_multi_constraints",
    "map_ifeval", "map_livecodebench", "map_llama_nemotron_chat", "map_llama_nemotron_safety",
    "map_llama_nemotron_science", "map_math500", "map_numina_math_cot", "map_open_code_reasoning",
    "map_open_math_reasoning", "map_rows", "map_s1k", "map_swe_bench", "map_swe_fixer", "map_swe_smith",
    "map_taco", "map_xlam_function_calling", "parse_choices", "parse_io_tests", "patch_files", "references",
    "reverse_patch", "stable_hash",
]
