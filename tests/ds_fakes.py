"""A one-rank stand-in for the DeepSpeed engine's mid-stage resume interface (no DeepSpeed).

Plain torch updates (:class:`~nemotron_cascade.training.engines.TorchEngine`); DeepSpeed's
``save_checkpoint`` becomes one file per tag with the module, optimiser and client state. With
``crash_in_save`` a save writes half of that file and raises :class:`Crash`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nemotron_cascade.training import engines


class Crash(Exception):
    pass


class OneRankDeepSpeed(engines.TorchEngine):
    stage = 2
    crash_in_save = False

    def save_checkpoint(self, directory, tag, client_state):
        file = Path(directory) / tag / "mp_rank_00_model_states.pt"
        if self.crash_in_save:
            file.write_bytes(b"half a checkpoint")
            raise Crash
        torch.save({"module": self.module.state_dict(), "opt": self.optimizer.state_dict(), "client": client_state},
                   file)

    def load_checkpoint(self, directory, tag):
        state = torch.load(Path(directory) / tag / "mp_rank_00_model_states.pt", weights_only=False)
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["opt"])
        return state["client"]

    def barrier(self):
        pass

    def broadcast_from_rank0(self, obj):
        return obj

    def all_true(self, flag):
        return bool(flag)
