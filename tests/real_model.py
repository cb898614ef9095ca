"""A pretrained base checkpoint in Hugging Face format, shaped like ``Qwen/Qwen3-0.6B-Base``, written
by ``save_pretrained`` at test time (no hub here), for the tests of the real path.

What it shares with the real checkpoint (its ``config.json``, ``generation_config.json`` and
``tokenizer_config.json``; the eos mismatch is QwenLM/Qwen3 issue 1422):

* the Qwen3 architecture (``Qwen3ForCausalLM``, grouped-query attention, q/k norms, tied embeddings,
  ``rope_theta`` 1e6, ``max_position_embeddings`` 32,768), saved in bfloat16 — only smaller;
* a byte-level BPE tokenizer whose special tokens are Qwen's (``<|endoftext|>``, ``<|im_start|>``,
  ``<|im_end|>``) and whose ``<think>``, ``</think>``, ``<tool_call>``, ``</tool_call>`` are added
  tokens, with Qwen3's own ChatML chat template inside ``tokenizer_config.json``;
* the end-token inconsistency of every Qwen3 *Base* checkpoint: the tokenizer's ``eos_token`` is
  ``<|im_end|>`` while ``config.json`` and ``generation_config.json`` say ``<|endoftext|>`` (also the
  pad and bos token), so a generator that trusts the generation config never ends a chat turn.

It is loaded by exactly the code that loads ``Qwen/Qwen3-0.6B-Base``
(:func:`nemotron_cascade.models.load_model` / :func:`~nemotron_cascade.models.load_tokenizer`).
"""

from __future__ import annotations

import json
from pathlib import Path

# Qwen3's chat template, shortened to its ChatML core (system/user/assistant/tool turns, the
# generation prompt, an empty think block when thinking is off): what the real tokenizer ships
# instead of the project's, which load_tokenizer installs.
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message.role == 'tool' -%}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}{%- endif -%}"
)
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
ADDED = ["<think>", "</think>", "<tool_call>", "</tool_call>"]
CORPUS = [
    "The answer is 42. Let me think step by step: 6 times 7 is 42.",
    "def solve():\n    n = int(input())\n    print(n * 2)\n",
    "Which of the following is a noble gas? (A) Oxygen (B) Neon (C) Nitrogen (D) Carbon",
    "Write a short poem about the sea, in lowercase letters only, without commas.",
    "Fix the bug in src/pkg/module.py: the function returns None when the list is empty.",
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
    "0123456789 +-*/=()[]{}<>.,:;!?'\"\\ \n\t",
]


def _tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 4, trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[ENDOFTEXT, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT, bos_token=None,
                                   unk_token=None, additional_special_tokens=[IM_START, IM_END])
    fast.add_tokens(ADDED)
    fast.chat_template = QWEN3_CHAT_TEMPLATE
    fast.model_max_length = 131072
    return fast


def save_qwen3_base(path: str | Path, *, hidden_size: int = 64, num_layers: int = 2, vocab_size: int = 600,
                    seed: int = 0) -> Path:
    """Write a randomly initialised Qwen3 base checkpoint (model, generation config, tokenizer) to
    ``path`` with ``save_pretrained``; returns ``path``."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    path = Path(path)
    tok = _tokenizer(vocab_size)
    endoftext = tok.convert_tokens_to_ids(ENDOFTEXT)
    config = Qwen3Config(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=3 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2, head_dim=hidden_size // 4,
        max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        bos_token_id=endoftext, eos_token_id=endoftext, pad_token_id=None, dtype="bfloat16")
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=endoftext, eos_token_id=endoftext,
                                               max_new_tokens=2048, do_sample=False)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def read_configs(path: str | Path) -> dict[str, dict]:
    """The three JSON files whose eos tokens disagree, as written, and ``chat_template``: the
    template the tokenizer ships (``transformers`` 5 writes it to ``chat_template.jinja``; the Hub's
    Qwen3 repositories keep it in ``tokenizer_config.json``: both load the same)."""
    path = Path(path)
    files = {name: json.loads((path / name).read_text()) for name in
             ("config.json", "generation_config.json", "tokenizer_config.json")}
    jinja = path / "chat_template.jinja"
    files["chat_template"] = jinja.read_text() if jinja.exists() else files["tokenizer_config.json"]["chat_template"]
    return files
