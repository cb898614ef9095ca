"""The RL prompt pool: seeded epochs with the paper's per-epoch dynamic filtering."""

from __future__ import annotations

import logging
import random

log = logging.getLogger(__name__)


class PromptPool:
    """Epochs over the prompts, with the paper's per-epoch dynamic filtering.

    Within an epoch prompts come in a seeded shuffled order. When an epoch ends, prompts whose
    group had zero reward variance (all right or all wrong, so no gradient) are left out of the
    next epoch, each re-admitted with probability ``readmit_prob``; if filtering would empty the
    pool, the whole set comes back. The state is a small dict, saved with the training state.
    """

    def __init__(self, n: int, seed: int, dynamic_filter: bool, readmit_prob: float):
        if n < 1:
            raise ValueError("the RL stage has no prompts")
        self.n, self.seed, self.dynamic, self.readmit = n, seed, dynamic_filter, readmit_prob
        self.epoch, self.pos, self.order = 0, 0, self._shuffle(list(range(n)), 0)
        self.uninformative: set[int] = set()
        self.filtered = 0

    def _shuffle(self, ids: list[int], epoch: int) -> list[int]:
        random.Random(self.seed * 7919 + epoch).shuffle(ids)
        return ids

    def take(self, k: int) -> list[int]:
        """The next ``k`` prompt indices (crossing into new epochs as needed)."""
        out = []
        while len(out) < k:
            if self.pos >= len(self.order):
                self._next_epoch()
            take = self.order[self.pos:self.pos + k - len(out)]
            out += take
            self.pos += len(take)
        return out

    def report(self, idx: int, zero_variance: bool) -> None:
        """Record whether prompt ``idx``'s group this epoch carried no signal."""
        (self.uninformative.add if zero_variance else self.uninformative.discard)(idx)

    def _next_epoch(self) -> None:
        self.epoch += 1
        keep = list(range(self.n))
        if self.dynamic:
            r = random.Random(self.seed * 104_729 + self.epoch)
            keep = [i for i in keep if i not in self.uninformative or r.random() < self.readmit]
            if not keep:
                keep = list(range(self.n))
        self.filtered = self.n - len(keep)
        self.uninformative = set()
        self.order, self.pos = self._shuffle(keep, self.epoch), 0
        log.info("epoch %d: %d prompts (%d filtered as all-right/all-wrong)", self.epoch, len(keep), self.filtered)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "order": list(self.order),
                "uninformative": sorted(self.uninformative), "filtered": self.filtered}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.pos, self.order = s["epoch"], s["pos"], list(s["order"])
        self.uninformative, self.filtered = set(s["uninformative"]), s["filtered"]
