"""Section 6. Sampling: temperature, then top-k, then top-p (nucleus), or greedy; generate_text.

Top-p keeps the *smallest* set of most probable tokens whose total probability reaches p:
the token that crosses p is kept, and so is the most probable token, always. The kept
probabilities are renormalized. p = 1.0 keeps the full distribution.

Sampling reads a model's log-probabilities over all 50,257 GPT-2 ids (`model.log_probs`), so
temperature, top-k and top-p mean the same for a compact head as for a full one: each id in
a compact head's bucket is one token with its share of the bucket's probability (the bucket's
prior), and a draw that lands on one of them returns that id.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from .device import autocast
from .models import model_device

# p lying on a cumulative boundary (0.5 + 0.3 = 0.8) must stop there, but float32 stores 0.7 as
# 0.69999999: a boundary this close below p counts as reaching it (float32 softmax rounds at ~1e-7).
BOUNDARY_TOLERANCE = 1e-6
NUCLEUS_CANDIDATES = 1024  # the most probable tokens a nucleus is first looked for among


def check_sampling_args(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature={temperature} must be above 0 (use top_p=None for greedy decoding).")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k={top_k!r} must be a whole number at least 1 (or None to keep every token).")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must lie in (0, 1]: 1.0 keeps the whole distribution.")


def wide_float(device: torch.device) -> torch.dtype:
    """The float for running sums over 50,257 probabilities: float64, where the device has it (Apple's GPUs
    have not)."""
    return torch.float32 if device.type == "mps" else torch.float64


def ranked_nucleus(ranked: torch.Tensor, p: float) -> torch.Tensor:
    """Which probabilities, ranked from the most probable, the top-p nucleus keeps: every one whose
    predecessors hold less than p, and always the first."""
    ranked = ranked.to(wide_float(ranked.device))
    keep = ranked.cumsum(dim=-1) - ranked < p - BOUNDARY_TOLERANCE
    keep[..., 0] = True
    return keep


def stable_rank(probs: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Some probabilities and their ids, ranked from the most probable, ties by id."""
    by_id = ids.argsort(dim=-1)
    probs, ids = probs.gather(-1, by_id), ids.gather(-1, by_id)
    order = probs.argsort(dim=-1, descending=True, stable=True)
    return probs.gather(-1, order), ids.gather(-1, order)


def nucleus_mask(probs: torch.Tensor, p: float) -> torch.Tensor:
    """True for the tokens in the top-p nucleus of each row of `probs` (..., vocab).

    The tokens are ranked by probability, ties by id. A trained model's nucleus is usually a few
    hundred tokens, so the ranking starts from the NUCLEUS_CANDIDATES most probable (a partial
    sort, several times faster than sorting all 50,257); where the nucleus does not end strictly
    above every other token, all of them are ranked, so that the answer is the same either way.
    """
    if probs.shape[-1] > NUCLEUS_CANDIDATES:
        ranked, ids = stable_rank(*probs.topk(NUCLEUS_CANDIDATES, dim=-1))
        keep = ranked_nucleus(ranked, p)
        least_kept = ranked.masked_fill(~keep, float("inf")).amin(dim=-1)
        if (least_kept > ranked[..., -1]).all():
            return torch.zeros(probs.shape, dtype=torch.bool, device=probs.device).scatter(-1, ids, keep)
    ranked, order = probs.to(wide_float(probs.device)).sort(dim=-1, descending=True, stable=True)
    return torch.zeros(probs.shape, dtype=torch.bool, device=probs.device).scatter(-1, order, ranked_nucleus(ranked, p))


def nucleus_size(logits: torch.Tensor, p: float, temperature: float = 1.0) -> int:
    """How many tokens the top-p nucleus of a 1-D logits vector holds."""
    check_sampling_args(temperature, top_p=p)
    return int(nucleus_mask((logits.float() / temperature).softmax(dim=-1), p).sum())


@torch.no_grad()
def next_token_log_probs(model, prompt_ids: list[int]) -> torch.Tensor:
    """The model's 1-D log-probabilities over every id for the token that follows the prompt."""
    if not prompt_ids:
        raise ValueError("The prompt is empty: give at least one character of text to continue.")
    device = model_device(model)
    return model.log_probs(torch.tensor(prompt_ids, dtype=torch.long, device=device).view(-1, 1))[-1, 0]


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Logits after temperature, top-k and top-p, with removed tokens at -inf."""
    check_sampling_args(temperature, top_k, top_p)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1.0:
        logits = logits.masked_fill(~nucleus_mask(logits.softmax(dim=-1), top_p), float("-inf"))
    return logits


@dataclass(frozen=True)
class Decoding:
    """How each next token is chosen: greedily (the default: top_p and top_k both None), or drawn at `temperature`
    from the top_k most likely tokens, the nucleus of probability top_p, or both. Checked when made."""

    top_p: float | None = None
    top_k: int | None = None
    temperature: float = 1.0

    def __post_init__(self):
        check_sampling_args(self.temperature, self.top_k, self.top_p)

    @property
    def greedy(self) -> bool:
        return self.top_p is None and self.top_k is None


GREEDY = Decoding()


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, greedy: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of logits or log-probabilities (..., vocab): the argmax if greedy, else a draw
    from the filtered distribution."""
    if greedy:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits, temperature, top_k, top_p).softmax(dim=-1)
    return draw(probs.reshape(-1, probs.shape[-1]), generator).view(probs.shape[:-1])


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One id per row of probs (rows, vocab), in proportion to its probability: a uniform number in [0, 1)
    times the row's total, and the first id whose running total passes it (an id of probability 0 never does).

    The same distribution as torch.multinomial, which on a CPU draws a random number for each of the 50,257
    ids; this draws one a row, and is many times faster there.
    """
    running = probs.to(wide_float(probs.device)).cumsum(dim=-1)
    total = running[:, -1:]
    uniform = torch.rand(total.shape, dtype=total.dtype, device=total.device, generator=generator)
    return torch.searchsorted(running, uniform * total, right=True).squeeze(-1)


def nucleus_sampling(logits: torch.Tensor, p: float = 0.95, generator: torch.Generator | None = None) -> int:
    """The starter's entry point: one token id drawn from the top-p nucleus of a 1-D logits vector."""
    if logits.dim() != 1:
        raise ValueError(f"nucleus_sampling takes a 1-D logits vector, got shape {tuple(logits.shape)}.")
    return int(sample_next_token(logits, top_p=p, generator=generator))


def make_generator(seed: int | None, device) -> torch.Generator | None:
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


@dataclass
class Generation:
    """New token ids, the log-probability the model gave each under its full distribution, and the
    prompt's ids that the model's vocabulary does not have (they entered as its bucket)."""

    tokens: list[int]
    logprobs: list[float]
    unknown_prompt_ids: list[int]


def unknown_ids(model, prompt_ids: list[int]) -> list[int]:
    """The prompt ids a compact model has never seen: they enter it as its bucket."""
    ids = torch.tensor(prompt_ids, device=model_device(model))
    return ids[model.vocabulary.in_bucket(ids)].tolist()




@torch.no_grad()
def generate_tokens(model, prompt_ids: list[int], max_new_tokens: int = 20, decoding: Decoding = GREEDY, *,
                    seed: int | None = None, use_cache: bool = True, precision: str = "fp32") -> Generation:
    """Decode max_new_tokens after the prompt, each token chosen as `decoding` says (greedily by default).

    A Transformer decodes with its KV cache (one token per step) unless use_cache is False;
    other models rerun on the prefix each step, cropped to the tokens they can see. The model
    runs in `precision` (as it trained, say); the sampling itself is always in fp32.
    """
    if not prompt_ids:
        raise ValueError("The prompt is empty: give at least one character of text to continue.")
    device = model_device(model)
    generator = make_generator(seed, device)
    was_training = model.training
    model.eval()
    context = torch.tensor(prompt_ids, dtype=torch.long, device=device)
    window = model.context_window
    cache = model.new_cache(1) if use_cache and hasattr(model, "new_cache") else None
    if cache is not None and len(prompt_ids) + max_new_tokens > window:
        raise ValueError(f"Prompt plus {max_new_tokens} new tokens exceeds the model's max_seq_len={window}.")
    new_tokens, logprobs = [], []
    next_input = context  # with a cache, only tokens the cache has not seen yet
    for _ in range(max_new_tokens):
        with autocast(device, precision):
            if cache is not None:
                log_probs = model.log_probs(next_input.view(-1, 1), cache)[-1, 0]
            else:
                visible = context if window is None else context[-window:]
                log_probs = model.log_probs(visible.view(-1, 1))[-1, 0]
        token = sample_next_token(log_probs, decoding.temperature, decoding.top_k, decoding.top_p, decoding.greedy,
                                  generator)
        new_tokens.append(int(token))
        logprobs.append(float(log_probs[token]))
        context = torch.cat([context, token.view(1)])
        next_input = token.view(1)
    model.train(was_training)
    return Generation(new_tokens, logprobs, unknown_ids(model, prompt_ids))


def generate_text(model, enc, prompt: str = "Once upon a", max_new_tokens: int = 20, decoding: Decoding = GREEDY, *,
                  seed: int | None = None, use_cache: bool = True, precision: str = "fp32") -> str:
    """The prompt followed by the model's continuation (see generate_tokens).

    Prompt words a compact model has never seen are noted on stderr, once a process: they enter as its bucket.
    """
    generation = generate_tokens(model, enc.encode_ordinary(prompt), max_new_tokens, decoding, seed=seed,
                                 use_cache=use_cache, precision=precision)
    if generation.unknown_prompt_ids:
        pieces = ", ".join(repr(enc.decode([i])) for i in generation.unknown_prompt_ids)
        note_once(f"Note: this model never saw {pieces} in training; the prompt reads them as its bucket.")
    return prompt + enc.decode(generation.tokens)


NOTED: set[str] = set()  # the notes this process has printed: a study that samples many models says each once


def note_once(message: str) -> None:
    if message not in NOTED:
        NOTED.add(message)
        print(message, file=sys.stderr)
