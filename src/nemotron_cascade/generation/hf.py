"""HF ``generate`` backend: batched, left-padded, length-sorted, with the KV cache.

Generation stops at the chat template's end-of-turn token and at every eos id the checkpoint's
configs name (:func:`nemotron_cascade.models.stop_token_ids`): a Qwen3 Base checkpoint's
``generation_config.json`` names ``<|endoftext|>`` only, and a chat turn ends with ``<|im_end|>``.

Sampling is pure temperature sampling (``top_k`` disabled, ``top_p`` as given) so that RL rollouts
are drawn from exactly the policy whose log-probabilities are trained on.

``SamplingParams.logprobs`` reads the *unprocessed* logits (``output_logits``), so the returned
log-probs are the model's raw log-softmax whatever the temperature or top-p (vLLM's
``raw_logprobs``). It holds a batch's logits for every step (batch x steps x vocab floats) until the
batch ends: bound ``batch_size`` for large vocabularies. Without it nothing extra is computed.
"""

from __future__ import annotations

from nemotron_cascade.generation.base import Completion, SamplingParams, logprob_entries


class HFGenerator:
    """Generate with a ``transformers`` causal LM on the device it lives on (inputs follow it)."""

    def __init__(self, model, tokenizer, batch_size: int = 64):
        from nemotron_cascade.models import stop_token_ids

        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))

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
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        sample = params.temperature > 0
        kwargs = dict(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None) \
            if sample else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.logprobs is not None:
            if params.logprobs < 0:
                raise ValueError(f"SamplingParams.logprobs must be >= 0 or None, got {params.logprobs}")
            kwargs.update(output_logits=True, return_dict_in_generate=True)
        with torch.no_grad():
            gen = self.model.generate(
                **enc, max_new_tokens=params.max_new_tokens, pad_token_id=tok.pad_token_id,
                eos_token_id=self.stop_ids, **kwargs,
            )
        if params.logprobs is None:
            new = gen[:, enc.input_ids.shape[1]:].cpu()
            return [self._completion(row.tolist()) for row in new]
        new = gen.sequences[:, enc.input_ids.shape[1]:].cpu()
        steps = _step_logprobs(tuple(x.cpu() for x in gen.logits), new, params.logprobs)
        return [self._completion(row.tolist(), lps) for row, lps in zip(new, steps)]

    def _completion(self, ids: list[int], logprobs: list[dict[int, float]] | None = None) -> Completion:
        """Cut at the first stop id (kept); ``logprobs`` is cut the same way. ``generate`` pads a row
        only after its stop, so a row that did not stop is all samples, a sampled pad id included."""
        stops = set(self.stop_ids)
        end = next((i for i, t in enumerate(ids) if t in stops), None)
        finished = end is not None
        ids = ids[:end + 1] if finished else ids
        return Completion(text=self.tokenizer.decode(ids, skip_special_tokens=True), token_ids=ids,
                          finished=finished, logprobs=None if logprobs is None else logprobs[:len(ids)])


def _step_logprobs(logits: tuple, new_ids, k: int) -> list[list[dict[int, float]]]:
    """Per row and step, the top-``k`` ids of the raw log-softmax plus the generated token's."""
    import torch

    vocab = logits[0].shape[-1]
    top_vals, top_ids, chosen = [], [], []
    for step, step_logits in enumerate(logits):  # one (batch, vocab) tensor per generated token
        logp = torch.log_softmax(step_logits.float(), dim=-1)
        top = logp.topk(min(k, vocab), dim=-1)
        top_vals.append(top.values)
        top_ids.append(top.indices)
        chosen.append(logp.gather(-1, new_ids[:, step:step + 1]).squeeze(-1))
    top_vals_l = torch.stack(top_vals, 1).tolist()
    top_ids_l = torch.stack(top_ids, 1).tolist()
    chosen_l = torch.stack(chosen, 1).tolist()
    return logprob_entries(new_ids.tolist(), top_ids_l, top_vals_l, chosen_l)
