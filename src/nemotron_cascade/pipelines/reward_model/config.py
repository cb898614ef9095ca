"""The typed parameters of the reward model (``params:reward_model``), built by Kedro before any
node of the run starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nemotron_cascade import config, stages
from nemotron_cascade.training import placement
from nemotron_cascade.training.launch import LaunchConfig
from nemotron_cascade.training.reward_model import RMConfig

INITS = ("policy", "scratch")


@dataclass(frozen=True)
class RMStageConfig:
    """``init: policy`` (the input checkpoint's body, a fresh scalar head) or ``scratch`` (a new
    tiny model of ``size``, fields of ``TinyModelConfig``); a ``train`` block of :class:`RMConfig`
    fields and an optional ``launch`` block; ``device`` is where it trains
    (:mod:`nemotron_cascade.training.placement`)."""

    init: str
    train: RMConfig
    size: Mapping[str, Any] | None = None
    device: str = "auto"
    launch: LaunchConfig = field(init=False, default=None)

    def __post_init__(self):
        config.check_fields(self)
        placement.check_device(self.device, "params reward_model.device")
        if self.init not in INITS:
            raise ValueError(f"params reward_model.init must be 'policy' or 'scratch', got {self.init!r}")
        cfg, launch, written, _ = stages.split_train_block(self.train, RMConfig, "train")
        for name, value in (("train", cfg), ("launch", launch), ("_train_params", written)):
            object.__setattr__(self, name, value)

    @property
    def train_params(self) -> Mapping[str, Any]:
        """The ``train`` block as written, without ``launch``: what the resume fingerprint hashes
        (not a field, so neither Kedro nor the tracking hook lists it beside ``train``)."""
        return self._train_params
