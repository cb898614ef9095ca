"""Models and tokenizers: a tiny Qwen3-architecture model built locally, or a pretrained one.

The embedded default cannot reach a model hub, so it trains a byte-level BPE tokenizer on the
world's own corpus (digits split one by one, so arithmetic stays learnable) and initialises a
~1–10 M parameter Qwen3 model — the architecture of the paper's base models — from scratch. The
``gpu`` profile loads a real base model from a path or hub name through the same
:func:`load_model` / :func:`load_tokenizer`.

``<think>``/``</think>`` and the tool-call tags are ordinary added tokens, not special ones:
decoding with ``skip_special_tokens=True`` must keep them, or every thinking answer would lose its
``</think>`` and score 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from nemotron_cascade import chat

log = logging.getLogger(__name__)

SPECIAL_TOKENS = [chat.IM_START, chat.IM_END, "<|endoftext|>"]
TAG_TOKENS = [chat.THINK_OPEN, chat.THINK_CLOSE, chat.TOOL_CALL_OPEN, chat.TOOL_CALL_CLOSE]


@dataclass(frozen=True)
class TinyModelConfig:
    """Size of the tiny model (flat fields, so a parameters file maps onto it one to one)."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    max_position_embeddings: int = 1024
    seed: int = 0


def train_tokenizer(texts: Iterable[str], vocab_size: int = 768):
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it for ``transformers``.

    GPT-2 style byte-level pre-tokenisation with digits split one by one; chat markers are special
    tokens, the think and tool-call tags ordinary added tokens.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Whitespace is its own token, so a word is the same token sequence after a space, a quote or a
    # bracket ("Paris" in the question and in the tool call's JSON): copying becomes exact token
    # copying, which a tiny model learns far sooner. Costs ~1.3x tokens on this corpus.
    # A space before a capitalised word is its own token, so proper nouns (cities, currencies,
    # names) tokenize the same in prose (" Paris") and inside JSON or quotes ("Paris"): copying
    # them into a tool call is then exact token copying. Other words keep GPT-2's " word" tokens
    # (isolating every space cost 1.3x tokens and trained far worse in the same time).
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Split(Regex(r" (?=[A-Z])"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token=chat.IM_END, pad_token="<|endoftext|>",
        unk_token=None, additional_special_tokens=[chat.IM_START],
    )
    fast.add_tokens(TAG_TOKENS)  # normal tokens: kept by skip_special_tokens
    fast.chat_template = chat.CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def tiny_config(tokenizer, cfg: TinyModelConfig, **overrides):
    """The ``Qwen3Config`` of a tiny model sized by ``cfg`` (the policy's, or a reward model's with
    ``num_labels=1``), its vocabulary and special ids from ``tokenizer``."""
    from transformers import Qwen3Config

    return Qwen3Config(**{
        "vocab_size": len(tokenizer), "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.hidden_size // cfg.num_heads, "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_position_embeddings, "tie_word_embeddings": True,
        "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None,
        "rope_theta": 10000.0, **overrides,
    })


def build_tiny_model(tokenizer, cfg: TinyModelConfig):
    """A freshly initialised Qwen3 causal LM sized by ``cfg``, its vocabulary from ``tokenizer``."""
    import torch
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(cfg.seed)
    model = Qwen3ForCausalLM(tiny_config(tokenizer, cfg))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    log.info("built tiny Qwen3: %.2f M parameters, vocab %d", count_parameters(model) / 1e6, len(tokenizer))
    return model


def count_parameters(model) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def load_tokenizer(name_or_path: str):
    """Load a tokenizer and give it the project's chat template (the paper's: mode flags per user turn).

    Prompts are rendered by :func:`nemotron_cascade.chat.render`; a checkpoint that ships another
    template (a Qwen3 Base carries Qwen3's) gets ours, so ``apply_chat_template`` and the saved
    checkpoints agree with what the model is trained on. The template's markers must be single tokens
    of the vocabulary (a real Qwen3 vocabulary has them all); a missing one is an error naming it.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path)
    if tok.chat_template and tok.chat_template != chat.CHAT_TEMPLATE:
        log.info("tokenizer of %s: its chat template replaced by the project's (chat.CHAT_TEMPLATE)", name_or_path)
    tok.chat_template = chat.CHAT_TEMPLATE
    for marker in (*SPECIAL_TOKENS, *TAG_TOKENS):
        ids = tok.convert_tokens_to_ids(marker)
        if ids is None or ids == tok.unk_token_id:
            raise ValueError(f"tokenizer of {name_or_path}: the chat template's marker {marker!r} is not a token "
                             "of its vocabulary")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def end_of_turn_id(tokenizer) -> int:
    """The token the chat template closes an assistant turn with (``<|im_end|>``), read from the
    template itself: the first token after an assistant message's content."""
    marker = "\x00end-of-turn probe\x00"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}], tokenize=False)
    rest = text[text.index(marker) + len(marker):]
    ids = tokenizer(rest, add_special_tokens=False).input_ids
    if not ids:
        raise ValueError("the chat template writes nothing after an assistant turn: no end-of-turn token")
    return int(ids[0])


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """Every id generation stops on: the chat template's end of turn first, then the eos ids of the
    checkpoint's generation config and of the tokenizer.

    Qwen3 *Base* checkpoints disagree with themselves (``tokenizer_config.json`` says ``<|im_end|>``,
    ``config.json`` and ``generation_config.json`` say ``<|endoftext|>``): a generator that stops on
    one of them only runs a chat turn to the length limit. Stopping on all of them, the template's
    end of turn included, is right whatever the files say. A tokenizer without a chat template
    stops on its eos alone.
    """
    if not tokenizer.chat_template:
        return [tokenizer.eos_token_id]
    ids = [end_of_turn_id(tokenizer)]
    eos = getattr(generation_config, "eos_token_id", None)
    for token in [*(eos if isinstance(eos, (list, tuple)) else [eos]), tokenizer.eos_token_id]:
        if token is not None and int(token) not in ids:
            ids.append(int(token))
    return ids


def context_length(config) -> int:
    """Tokens a model of this ``transformers`` config can attend over: ``max_position_embeddings``,
    times the YaRN factor when its rope is scaled so (vLLM derives ``max_model_len`` the same way)."""
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    limit = int(config.max_position_embeddings)
    if rope.get("rope_type") == "yarn" and rope.get("factor"):
        original = int(rope.get("original_max_position_embeddings") or limit)
        return int(original * float(rope["factor"]))
    return limit


def with_rope_scaling(config, rope_scaling: dict | None):
    """``config`` with ``rope_scaling`` (e.g. ``{rope_type: yarn, factor: 2.0,
    original_max_position_embeddings: 32768}``, as Qwen3's documentation sets it for longer
    contexts) merged over its rope parameters, ``rope_theta`` kept."""
    if rope_scaling:
        current = dict(getattr(config, "rope_parameters", None) or {})
        config.rope_parameters = {**current, **dict(rope_scaling)}
    return config


def load_model(name_or_path: str, dtype: str = "float32", attn_implementation: str = "sdpa",
               rope_scaling: dict | None = None):
    """Load a pretrained causal LM (local path or hub name) in ``dtype``; ``rope_scaling`` extends
    its context (see :func:`with_rope_scaling`)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = with_rope_scaling(AutoConfig.from_pretrained(name_or_path), rope_scaling)
    return AutoModelForCausalLM.from_pretrained(
        name_or_path, config=config, dtype=getattr(torch, dtype), attn_implementation=attn_implementation
    )
