"""The world's domains by name, in the world's order (the order every loop over domains keeps).

Adding a domain: a module with ``task``, ``respond`` and a ``DOMAIN = Domain(...)`` entry (see
:class:`~nemotron_cascade.data.world.common.Domain`), listed here.
"""

from __future__ import annotations

from nemotron_cascade.data.world import code, general, instruction_following, math, science, swe, tool_calling
from nemotron_cascade.data.world.common import Domain

REGISTRY: dict[str, Domain] = {d.name: d for d in (
    math.DOMAIN, code.DOMAIN, science.DOMAIN, instruction_following.DOMAIN, general.DOMAIN,
    tool_calling.DOMAIN, swe.DOMAIN)}
DOMAINS = tuple(REGISTRY)


def get_domain(name: str) -> Domain:
    """The registered domain ``name``; a KeyError naming the known ones otherwise."""
    if name not in REGISTRY:
        raise KeyError(f"unknown domain {name!r}; known: {', '.join(DOMAINS)}")
    return REGISTRY[name]
