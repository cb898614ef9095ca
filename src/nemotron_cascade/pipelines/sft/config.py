"""The typed parameters of the SFT pipeline (``params:base_model``, ``params:sft.<stage>``).

Kedro builds them before any node of the run starts (the nodes' signatures name the types), so a
typo stops ``kedro run`` at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nemotron_cascade import config, stages
from nemotron_cascade.models import TinyModelConfig
from nemotron_cascade.training import placement
from nemotron_cascade.training.launch import LaunchConfig
from nemotron_cascade.training.sft import SFTConfig

SOURCES = ("tiny", "pretrained")


@dataclass(frozen=True)
class SFTStageConfig:
    """One SFT (or pretraining) run: a ``train`` block of :class:`SFTConfig` fields, the packing
    ``block_size`` (tokens per packed block) and an optional ``launch`` block; ``device`` is where
    it trains (:mod:`nemotron_cascade.training.placement`; not part of the resume fingerprint)."""

    train: SFTConfig
    device: str = "auto"
    block_size: int = field(init=False, default=None)
    launch: LaunchConfig = field(init=False, default=None)

    def __post_init__(self):
        config.check_fields(self)
        placement.check_device(self.device, "params sft.<stage>.device")
        cfg, launch, written, extras = stages.split_train_block(self.train, SFTConfig, "train", ("block_size",))
        for name, value in (("train", cfg), ("launch", launch), ("_train_params", written),
                            ("block_size", int(extras["block_size"]))):
            object.__setattr__(self, name, value)

    @property
    def train_params(self) -> Mapping[str, Any]:
        """The ``train`` block as written, without ``launch``: what the resume fingerprint hashes
        (not a field, so neither Kedro nor the tracking hook lists it beside ``train``)."""
        return self._train_params


@dataclass(frozen=True)
class BaseModelConfig:
    """The starting checkpoint: ``source: tiny`` builds a model of size ``tiny`` and a tokenizer of
    ``vocab_size`` tokens (pretrained on the corpus first when ``pretrain.max_steps > 0``);
    ``source: pretrained`` loads ``name_or_path`` in ``dtype`` with ``attn_implementation``, its context
    extended by ``rope_scaling`` when given (YaRN; checked against the stages' lengths before a run,
    :mod:`nemotron_cascade.lengths`). ``dtype`` is the cascade's compute dtype too: every checkpoint
    is saved and loaded in it, and ``bfloat16`` trains with fp32 master weights and bf16 autocast
    (:mod:`nemotron_cascade.training.placement`). ``device`` is where the tiny model pretrains."""

    source: str
    vocab_size: int
    tiny: Mapping[str, Any]
    name_or_path: str | None = None
    pretrain: Mapping[str, Any] | None = None
    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    rope_scaling: Mapping[str, Any] | None = None
    device: str = "auto"

    def __post_init__(self):
        config.check_fields(self)
        placement.check_device(self.device, "params base_model.device")
        if self.source not in SOURCES:
            raise ValueError(f"params base_model.source must be 'tiny' or 'pretrained', got {self.source!r}")
        if self.source == "pretrained" and not self.name_or_path:
            raise ValueError("params base_model.name_or_path is required when base_model.source is 'pretrained'")
        config.config_from_params(TinyModelConfig, self.tiny, "tiny")  # a typo fails here, not at the node
        self.pretraining  # noqa: B018 (builds the pretrain block: a typo fails here too)

    @property
    def tiny_config(self) -> TinyModelConfig:
        return TinyModelConfig(**self.tiny)

    @property
    def pretraining(self) -> SFTStageConfig | None:
        """The tiny model's pretraining run (``pretrain`` with ``max_steps > 0``), or ``None``."""
        if not self.pretrain or int(self.pretrain.get("max_steps", 0)) <= 0:
            return None
        try:
            return SFTStageConfig(self.pretrain)
        except ValueError as exc:
            raise ValueError(f"pretrain block: {exc}") from exc
