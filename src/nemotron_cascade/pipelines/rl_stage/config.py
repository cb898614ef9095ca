"""The typed parameters of an RL stage (``params:<stage>`` in ``conf/*/parameters_rl.yml``).

Kedro builds an :class:`RLStageConfig` from the stage's block before any node of the run starts
(the nodes' signatures name the type), so a typo anywhere in it, ``train`` included, stops
``kedro run`` at once instead of after the stages before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nemotron_cascade import config, stages
from nemotron_cascade.rl.trainer import GRPOConfig
from nemotron_cascade.training import placement
from nemotron_cascade.training.launch import LaunchConfig


@dataclass(frozen=True)
class LocalisationConfig:
    """How the stage's prompts are localised with the policy's own guess (SWE RL)."""

    top_k: int
    max_new_tokens: int


@dataclass(frozen=True)
class RLStageConfig:
    """One RL stage: its prompts (``domains``, ``max_prompts``), reward, GRPO knobs and wiring.

    ``reward_model`` and ``localisation`` wire the stage (the registry reads them from
    ``conf/base``): ``reward_model: true`` gives it the reward model checkpoint, a
    ``localisation`` block re-ranks its prompts' context files with the policy first. ``train``
    is a :class:`GRPOConfig` plus an optional ``launch`` block (:attr:`launch`). ``device`` is
    where the policy, its HF rollouts, the localisation guesses and the reward model run
    (:mod:`nemotron_cascade.training.placement`; not part of the resume fingerprint).
    """

    domains: tuple[str, ...]
    reward: str
    train: GRPOConfig
    max_prompts: int | None = None
    diagnostics: tuple[str, ...] = ()
    reward_model: bool = False
    localisation: LocalisationConfig | None = None
    device: str = "auto"
    launch: LaunchConfig = field(init=False, default=None)

    def __post_init__(self):
        config.check_fields(self)
        placement.check_device(self.device, "params <rl stage>.device")
        cfg, launch, written, _ = stages.split_train_block(self.train, GRPOConfig, "train")
        loc = self.localisation
        if isinstance(loc, Mapping):
            loc = config.config_from_params(LocalisationConfig, loc, "localisation")
        if not isinstance(self.reward_model, bool):
            raise ValueError(f"reward_model must be true or false, got {self.reward_model!r}")
        for name, value in (("train", cfg), ("launch", launch), ("_train_params", written), ("localisation", loc),
                            ("domains", tuple(self.domains)), ("diagnostics", tuple(self.diagnostics or ()))):
            object.__setattr__(self, name, value)

    @property
    def train_params(self) -> Mapping[str, Any]:
        """The ``train`` block as written, without ``launch``: what the resume fingerprint hashes
        (not a field, so neither Kedro nor the tracking hook lists it beside ``train``)."""
        return self._train_params
