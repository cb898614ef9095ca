"""HF ``generate`` backend: batched, left-padded, length-sorted, with the KV cache.

Sampling is pure temperature sampling (``top_k`` disabled, ``top_p`` as given) so that RL rollouts
are drawn from exactly the policy whose log-probabilities are trained on.
"""

from __future__ import annotations

from nemotron_cascade.generation.base import Completion, SamplingParams


class HFGenerator:
    """Generate with a ``transformers`` causal LM on the local device."""

    def __init__(self, model, tokenizer, batch_size: int = 64):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        """Complete every prompt ``params.n`` times; results in prompt order."""
        import torch

        expanded = [(i, p) for i, p in enumerate(prompts) for _ in range(params.n)]
        lengths = [len(self.tokenizer(p, add_special_tokens=False).input_ids) for _, p in expanded]
        order = sorted(range(len(expanded)), key=lambda k: lengths[k])
        out: list[list[Completion]] = [[] for _ in prompts]
        results: dict[int, Completion] = {}
        torch.manual_seed(params.seed)
        was_training = self.model.training
        self.model.eval()
        from tqdm.auto import tqdm

        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc="generate", leave=False, disable=len(starts) < 2):
            chunk = order[start:start + self.batch_size]
            for k, c in zip(chunk, self._generate_batch([expanded[k][1] for k in chunk], params)):
                results[k] = c
        self.model.train(was_training)
        for k, (i, _) in enumerate(expanded):
            out[i].append(results[k])
        return out

    def _generate_batch(self, texts: list[str], params: SamplingParams) -> list[Completion]:
        import torch

        tok = self.tokenizer
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        sample = params.temperature > 0
        kwargs = dict(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None) \
            if sample else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.no_grad():
            gen = self.model.generate(
                **enc, max_new_tokens=params.max_new_tokens, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, **kwargs,
            )
        new = gen[:, enc.input_ids.shape[1]:]
        return [self._completion(row.tolist()) for row in new]

    def _completion(self, ids: list[int]) -> Completion:
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        finished = eos in ids
        ids = ids[: ids.index(eos) + 1] if finished else [t for t in ids if t != pad]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Completion(text=text, token_ids=ids, finished=finished)
