"""What differs between the transformers versions the package supports (pyproject: >=5.20,<5.25).

The CPU environment runs transformers 5.24.0 (requirements/cpu.txt); the GPU one runs 5.20.2, the
newest that vLLM 0.33.0 accepts (requirements/gpu.txt). One difference reaches the package:

* activation checkpointing: 5.24 names it ``activation_checkpointing_enable`` /
  ``_disable`` / ``is_activation_checkpointing`` and keeps ``gradient_checkpointing_*`` as
  deprecated aliases (a ``FutureWarning`` each call); 5.20 has only ``gradient_checkpointing_*``.
  The functions below call whichever the installed version has, the new name first.
"""

from __future__ import annotations


def activation_checkpointing_enable(model, use_reentrant: bool = False) -> None:
    """Recompute each layer's activations in the backward pass (``use_reentrant`` as torch's
    ``checkpoint`` takes it)."""
    kwargs = {"use_reentrant": use_reentrant}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def activation_checkpointing_disable(model) -> None:
    """Switch activation checkpointing off again."""
    if hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def is_activation_checkpointing(model) -> bool:
    """Whether activation checkpointing is on for ``model``."""
    if hasattr(type(model), "is_activation_checkpointing"):
        return bool(model.is_activation_checkpointing)
    return bool(model.is_gradient_checkpointing)
