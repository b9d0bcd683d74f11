"""Section 5 (part three). Count models: what counting alone gets, the baseline beside every curve.

An n-gram count model predicts the next token from how often each token followed the last n-1
tokens in the training text. Raw frequencies give nothing to what was never seen, so every
order is *discounted* and mixed with the order below it: interpolated Kneser-Ney, in the
"modified" form of Chen and Goodman (1998), with three discounts per order (for n-grams seen
once, twice, three times or more) computed from the counts of counts. The lower orders count
in how many different contexts a shorter n-gram ends (*continuation counts*): " Francisco"
follows " San" often but after few words, so it should get little probability where the
longer context was never seen. Below the unigrams lies a uniform floor, so that every one of
the 50,257 ids gets some probability.

The model keeps the bundle's contract (models.py): `log_probs(tokens)` over every GPT-2 id,
`next_token_loss(tokens)` in nats, reading (seq_len, batch) windows, so that `evaluate` scores
it on the same held-out windows and targets as any neural model and `generate_text` samples
from it. It sees only the window it is given: the first targets of a window have a shorter
context, as they have for the neural models.

Everything is counted with array operations. An n-gram is one int64 key: the index of its first
n-1 tokens among the (n-1)-grams, times the vocabulary size, plus its last token. Keys are kept
sorted, so the n-grams that continue a context are one contiguous run, found by binary search.

`leave_one_out=True` scores training text as if each scored token had not been counted (every
count its n-grams add is taken out again): what a model trained beside counts needs, since the
counts' own training text is text they have memorised.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from .heads import Vocabulary
from .models import model_device
from .tokenizer import GPT2_VOCAB_SIZE

MAX_ORDER = 5
FALLBACK_DISCOUNT = 0.75  # where the counts of counts cannot give discounts (a tiny text)


def count_label(order: int) -> str:
    """How a count model of this order is named: "unigram counts", "3-gram counts"."""
    return "unigram counts" if order == 1 else f"{order}-gram counts"


def discounts_from(counts: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney's discounts [0, D1, D2, D3+] from the counts of counts (Chen and Goodman's estimates).

    n_r is the number of n-grams seen exactly r times; Y = n1 / (n1 + 2 n2) and D_r = r - (r + 1) Y n_{r+1} / n_r.
    Where some n_r is zero (a tiny text), every discount is FALLBACK_DISCOUNT.
    """
    n = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(np.float64)
    if (n == 0).any():
        return np.array([0.0, FALLBACK_DISCOUNT, FALLBACK_DISCOUNT, FALLBACK_DISCOUNT])
    y = n[0] / (n[0] + 2 * n[1])
    found = np.array([r - (r + 1) * y * n[r] / n[r - 1] for r in (1, 2, 3)])
    return np.concatenate([[0.0], np.clip(found, 0.0, [1.0, 2.0, 3.0])])


def stream_positions(streams) -> tuple[np.ndarray, np.ndarray]:
    """Every stream's ids end to end, and each token's position in its own stream (an n-gram never spans two)."""
    streams = [np.asarray(stream, dtype=np.int64) for stream in streams if len(stream)]
    if not streams:
        raise ValueError("A count model needs some training text: every stream is empty.")
    return np.concatenate(streams), np.concatenate([np.arange(len(stream)) for stream in streams])


def count_ngrams(tokens: np.ndarray, positions: np.ndarray, order: int, vocab_size: int):
    """The n-grams of every order up to `order`: per order, the sorted keys, the raw counts, and the index
    of the n-gram ending at each position (-1 where the stream has not yet had n tokens)."""
    keys, raw, ending_at = [], [], []
    previous = None
    for n in range(1, order + 1):
        valid = positions >= n - 1
        if n == 1:
            key = tokens
        else:
            key = np.full(len(tokens), -1, dtype=np.int64)
            key[1:] = previous[:-1] * vocab_size + tokens[1:]
        unique, inverse = np.unique(key[valid], return_inverse=True)
        index = np.full(len(tokens), -1, dtype=np.int64)
        index[valid] = inverse
        keys.append(unique)
        raw.append(np.bincount(inverse, minlength=len(unique)))
        ending_at.append(index)
        previous = index
    return keys, raw, ending_at


def continuation_counts(longer_index: np.ndarray, shorter_index: np.ndarray, size: int) -> np.ndarray:
    """For each n-gram, how many distinct tokens precede it: the number of (n+1)-gram types it ends."""
    valid = longer_index >= 0
    _, first = np.unique(longer_index[valid], return_index=True)
    return np.bincount(shorter_index[valid][first], minlength=size)


class CountOrder(nn.Module):
    """The tables of one order n: its n-grams' keys, the counts it predicts with, its raw counts (for leaving
    one out), and per context (an (n-1)-gram, or the empty context of the unigrams) the total count and how
    many of its continuations were seen once, twice, three times or more."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, raw: np.ndarray, contexts: np.ndarray,
                 num_contexts: int):
        super().__init__()
        discounts = discounts_from(counts[counts > 0])
        seen = [(counts == 1), (counts == 2), (counts >= 3)]
        self.register_buffer("keys", torch.from_numpy(keys))
        self.register_buffer("counts", torch.from_numpy(counts))
        self.register_buffer("raw", torch.from_numpy(raw))
        self.register_buffer("discounts", torch.from_numpy(discounts))
        self.register_buffer("total", torch.from_numpy(np.bincount(contexts, counts, num_contexts)))
        self.register_buffer("seen", torch.from_numpy(np.stack([np.bincount(contexts, s, num_contexts)
                                                                for s in seen], axis=-1)))

    def discount(self, counts: torch.Tensor) -> torch.Tensor:
        """D(c): 0 for c = 0, then D1, D2, D3+."""
        return self.discounts[counts.clamp(max=3)]

    def find(self, keys: torch.Tensor) -> torch.Tensor:
        """The index of each key among this order's n-grams, -1 where it was never seen (or is -1)."""
        index = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        return torch.where((self.keys[index] == keys) & (keys >= 0), index, -1)

    def count_of(self, index: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return torch.where(index >= 0, table[index.clamp(min=0)], 0)

    def backoff_weight(self, contexts: torch.Tensor) -> torch.Tensor:
        """gamma(h) = D1 N1(h) + D2 N2(h) + D3+ N3+(h): the mass the discounts free for the lower order."""
        return (self.seen[contexts].double() * self.discounts[1:]).sum(-1)


class CountModel(nn.Module):
    """An interpolated modified Kneser-Ney model of order 1 to MAX_ORDER over GPT-2 ids (see the module's text).

    Build it with `count_model(streams, order)`. Like every model of the bundle it reads (seq_len, batch)
    ids; it has no parameters to train.
    """

    family = "counts"

    def __init__(self, streams, order: int = 3, vocab_size: int = GPT2_VOCAB_SIZE):
        super().__init__()
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order={order}: a count model's order lies in 1..{MAX_ORDER} (3 counts trigrams).")
        tokens, positions = stream_positions(streams)
        if tokens.max() >= vocab_size:
            raise ValueError(f"Token ids must lie in [0, {vocab_size}): was the text encoded with GPT-2's tokenizer?")
        keys, raw, ending_at = count_ngrams(tokens, positions, order, vocab_size)
        self.order, self.vocab_size = order, vocab_size
        self.config = {"order": order, "vocab_size": vocab_size, "train_tokens": int(len(tokens))}
        self.context_window = max(1, order - 1)  # tokens a prediction can see (a unigram model sees none)
        self.vocabulary = Vocabulary(vocab_size)
        levels = []
        for n in range(1, order + 1):
            counts = raw[n - 1] if n == order else continuation_counts(ending_at[n], ending_at[n - 1],
                                                                       len(keys[n - 1]))
            contexts = np.zeros(len(keys[n - 1]), dtype=np.int64) if n == 1 else keys[n - 1] // vocab_size
            levels.append(CountOrder(keys[n - 1], counts, raw[n - 1], contexts,
                                     1 if n == 1 else len(keys[n - 2])))
        self.levels = nn.ModuleList(levels)

    def __repr__(self) -> str:
        return f"CountModel(order={self.order}, {self.config['train_tokens']:,} training tokens)"

    @property
    def label(self) -> str:
        return "unigram counts" if self.order == 1 else f"{self.order}-gram counts"

    # ------------------------------------------------------------ contexts

    def context_indices(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """For every position t of (seq_len, batch) ids, the index of the n-gram ending at t, for n = 1 ..
        order - 1 (-1 where it was never seen or reaches before the window): the contexts of orders 2 .. order."""
        found = []
        for n in range(1, self.order):
            if n == 1:
                keys = tokens
            else:
                before = torch.full_like(tokens, -1)
                before[1:] = found[-1][:-1]
                keys = torch.where(before >= 0, before * self.vocab_size + tokens, -1)
            found.append(self.levels[n - 1].find(keys))
        return found

    def unigram_floor(self) -> torch.Tensor:
        """gamma / total / V: the share of the uniform floor each id gets at the unigram level."""
        level = self.levels[0]
        return level.backoff_weight(torch.zeros(1, dtype=torch.long, device=level.keys.device))[0] / (
            level.total[0] * self.vocab_size)

    # ------------------------------------------------------------ the targets' probabilities

    @torch.no_grad()
    def target_probs(self, tokens: torch.Tensor, leave_one_out: bool = False) -> torch.Tensor:
        """p(tokens[t+1] | the window up to t) for t = 0 .. seq_len - 2: (seq_len - 1, batch), in float64.

        With leave_one_out, each target is scored as if its own occurrence had not been counted: at the
        highest order its count and its context's total drop by one; at a lower order its continuation count
        drops by one where the longer n-gram occurred only here. (A target whose longer n-gram starts before
        the window keeps its counts.)
        """
        tokens = tokens.to(self.levels[0].keys.device)
        contexts = [index[:-1] for index in self.context_indices(tokens)]
        targets = tokens[1:]
        found = [self.levels[0].find(targets)]
        for n in range(2, self.order + 1):
            context = contexts[n - 2]
            found.append(self.levels[n - 1].find(torch.where(context >= 0, context * self.vocab_size + targets, -1)))
        probs = None
        for n, level in enumerate(self.levels, start=1):
            context = torch.zeros_like(targets) if n == 1 else contexts[n - 2]
            counts = level.count_of(found[n - 1], level.counts)
            taken = torch.zeros_like(counts)
            if leave_one_out:
                taken = (found[n - 1] >= 0).long() if n == self.order else (
                    self.levels[n].count_of(found[n], self.levels[n].raw) == 1).long()
            probs = self.interpolate(level, context, counts, taken, probs)
        return probs

    def interpolate(self, level: CountOrder, context: torch.Tensor, counts: torch.Tensor, taken: torch.Tensor,
                    lower: torch.Tensor | None) -> torch.Tensor:
        """One order's p(w | h) = (max(c - D(c), 0) + gamma(h) p_lower) / total(h), with `taken` counts left out;
        the lower order's probability alone where h was never seen (or only with this target, once left out)."""
        seen = context >= 0
        safe = context.clamp(min=0)
        total = torch.where(seen, level.total[safe], 0) - taken
        gamma = torch.where(seen, level.backoff_weight(safe), 0.0)
        left = counts - taken
        gamma = gamma - taken * (level.discount(counts) - level.discount(left))
        if lower is None:
            lower = torch.full(counts.shape, 1.0 / self.vocab_size, dtype=torch.float64, device=counts.device)
        mixed = ((left - level.discount(left)).clamp(min=0) + gamma * lower) / total.clamp(min=1)
        return torch.where(total > 0, mixed, lower)

    def next_token_loss(self, tokens: torch.Tensor, mask: torch.Tensor | None = None, fused: bool = True,
                        leave_one_out: bool = False) -> torch.Tensor:
        """Mean nats of predicting tokens[1:] from the window before each (mask: True at real tokens)."""
        if tokens.shape[0] < 2:
            return torch.zeros((), device=tokens.device)
        nats = -self.target_probs(tokens, leave_one_out).log()
        if mask is not None:
            counted = mask[1:].to(nats.device)
            return ((nats * counted).sum() / counted.sum().clamp(min=1)).float().to(tokens.device)
        return nats.mean().float().to(tokens.device)

    # ------------------------------------------------------------ whole distributions

    @torch.no_grad()
    def probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """The whole next-token distribution after every position: (seq_len, batch, vocab_size), float64."""
        tokens = tokens.to(self.levels[0].keys.device)
        rows = tokens.reshape(-1)
        contexts = [index.reshape(-1) for index in self.context_indices(tokens)]
        level = self.levels[0]
        unigram = (level.counts - level.discount(level.counts)).double() / level.total[0]
        probs = torch.full((self.vocab_size,), float(self.unigram_floor()), dtype=torch.float64, device=rows.device)
        probs = probs.index_add(0, level.keys, unigram).expand(len(rows), -1)
        for n in range(2, self.order + 1):
            probs = self.add_order(self.levels[n - 1], contexts[n - 2], probs)
        return probs.reshape(*tokens.shape, self.vocab_size)

    def add_order(self, level: CountOrder, context: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
        """Rows of p_lower (rows, vocab) -> p at this order, given each row's context (-1: unseen)."""
        safe = context.clamp(min=0)
        total = torch.where(context >= 0, level.total[safe], 0)
        rows = torch.nonzero(total > 0).squeeze(1)
        first = torch.searchsorted(level.keys, safe[rows] * self.vocab_size)
        ends = torch.searchsorted(level.keys, (safe[rows] + 1) * self.vocab_size)
        lengths = ends - first
        row_of = torch.repeat_interleave(rows, lengths)
        entry = torch.arange(int(lengths.sum()), device=rows.device) - torch.repeat_interleave(
            lengths.cumsum(0) - lengths, lengths) + torch.repeat_interleave(first, lengths)
        counts = level.counts[entry]
        probs = lower.contiguous()
        probs[rows] = lower[rows] * level.backoff_weight(safe[rows]).unsqueeze(1)
        probs.index_put_((row_of, level.keys[entry] % self.vocab_size),
                         (counts - level.discount(counts)).clamp(min=0).double(), accumulate=True)
        probs[rows] /= total[rows].unsqueeze(1)
        return probs

    def log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (seq_len, batch) -> log-probabilities (seq_len, batch, vocab_size) over every id."""
        return self.probs(tokens).log().float().to(tokens.device)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """As logits, the log-probabilities themselves (their softmax is the model's distribution)."""
        return self.log_probs(tokens)


def count_model(streams, order: int = 3, vocab_size: int = GPT2_VOCAB_SIZE) -> CountModel:
    """An interpolated modified Kneser-Ney count model of `order` fitted on token streams (arrays of GPT-2 ids),
    or on a corpus's training streams."""
    if hasattr(streams, "train_streams"):
        streams = streams.train_streams()
    return CountModel(streams, order, vocab_size)


# ---------------------------------------------------------------- a neural model with counts beside it

MIXTURE_WEIGHTS = torch.arange(1, 100, dtype=torch.float64) / 100  # the neural model's shares tried: 0.01 .. 0.99


class CountsCache:
    """What generating with a KV cache needs beside counts: the neural model's cache, and the ids so far."""

    def __init__(self, inner, batch_size: int, device):
        self.inner = inner
        self.ids = torch.zeros((0, batch_size), dtype=torch.long, device=device)


class WithCounts(nn.Module):
    """A neural model and a count model of the same training text, mixed: p = w p_model + (1 - w) p_counts.

    They err in different places. The counts know every phrase of the training text by heart but
    nothing beyond their last n-1 tokens; the neural model has learnt fewer phrases, but reads its
    whole window and shares what it learnt between similar words. Their mixture is better than either
    (a linear mixture of two distributions is a distribution). The weight w is chosen on validation
    text, never on the held-out text (`choose_counts`).
    """

    family = "with counts"

    def __init__(self, model: nn.Module, counts: CountModel, weight: float):
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight={weight}: the neural model's share of the mixture lies in [0, 1].")
        self.model, self.counts, self.weight = model, counts, weight
        self.vocabulary, self.vocab_size = model.vocabulary, model.vocab_size
        self.context_window = model.context_window
        self.config = {"model": getattr(model, "config", {}), "counts": counts.config, "weight": weight}

    @property
    def checkpoint_metadata(self) -> dict:
        """How the neural model trained, as its checkpoint says (empty for one never saved)."""
        return getattr(self.model, "checkpoint_metadata", {})

    def mix(self, model_log_probs: torch.Tensor, count_probs: torch.Tensor) -> torch.Tensor:
        """log(w p_model + (1 - w) p_counts), from the model's log-probabilities and the counts' probabilities."""
        return torch.logaddexp(model_log_probs.double() + math.log(max(self.weight, 1e-300)),
                               count_probs.log() + math.log(max(1.0 - self.weight, 1e-300)))

    def next_token_loss(self, tokens: torch.Tensor, mask: torch.Tensor | None = None,
                        fused: bool = True) -> torch.Tensor:
        """Mean nats of the mixture on tokens[1:] (mask: True at real tokens)."""
        if tokens.shape[0] < 2:
            return torch.zeros((), device=tokens.device)
        nats = -self.mix(self.model.target_log_probs(tokens), self.counts.target_probs(tokens).to(tokens.device))
        if mask is None:
            return nats.mean().float()
        counted = mask[1:].to(nats.dtype)
        return ((nats * counted).sum() / counted.sum().clamp(min=1)).float()

    def new_cache(self, batch_size: int):
        """A cache for generating, when the neural model has one (the Transformer's KV cache)."""
        inner = self.model.new_cache(batch_size) if hasattr(self.model, "new_cache") else None
        return None if inner is None else CountsCache(inner, batch_size, model_device(self.model))

    def log_probs(self, tokens: torch.Tensor, cache: CountsCache | None = None) -> torch.Tensor:
        """tokens (seq_len, batch) -> log-probabilities of the mixture (seq_len, batch, vocab_size). With a cache,
        the tokens continue it, and the counts read the ids before them too."""
        if cache is None:
            return self.mix(self.model.log_probs(tokens), self.counts.probs(tokens).to(tokens.device)).float()
        model_log_probs = self.model.log_probs(tokens, cache.inner)
        cache.ids = torch.cat([cache.ids, tokens])
        context = cache.ids[-(len(tokens) + self.counts.context_window):]
        count_probs = self.counts.probs(context)[-len(tokens):].to(tokens.device)
        return self.mix(model_log_probs, count_probs).float()

    def forward(self, tokens: torch.Tensor, *state) -> torch.Tensor:
        return self.log_probs(tokens, *state)


@torch.no_grad()
def target_log_probs_on(model: nn.Module, heldout) -> torch.Tensor:
    """Every held-out target's log-probability under a model, in the order evaluate() visits them (float64)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    pieces = []
    for tokens, mask in heldout.heldout_batches(256):
        tokens = tokens.to(device)
        scores = (model.target_log_probs(tokens).double() if hasattr(model, "target_log_probs")
                  else model.target_probs(tokens).log())
        pieces.append(scores.flatten() if mask is None else scores[mask[1:].to(device)])
    model.train(was_training)
    return torch.cat(pieces).cpu()


def choose_counts(model: nn.Module, count_models: list[CountModel], validation) -> dict:
    """The count model and the weight w that mix best with `model` on validation text (held out from training,
    never the held-out works): the order and w (in steps of 0.01) of the lowest mixed loss there, with the
    mixed loss, the model's alone and each count model's alone, in nats per token."""
    model_scores = target_log_probs_on(model, validation)
    best = None
    for counts in count_models:
        count_scores = target_log_probs_on(counts, validation)
        mixed = -torch.logaddexp(model_scores + MIXTURE_WEIGHTS.log().unsqueeze(1),
                                 count_scores + (1 - MIXTURE_WEIGHTS).log().unsqueeze(1)).mean(dim=1)
        index = int(mixed.argmin())
        candidate = {"order": counts.order, "weight": float(MIXTURE_WEIGHTS[index]), "mixed_loss": float(mixed[index]),
                     "counts_loss": float(-count_scores.mean())}
        if best is None or candidate["mixed_loss"] < best["mixed_loss"]:
            best = candidate
    return {**best, "model_loss": float(-model_scores.mean()), "validation_tokens": len(model_scores)}


MIXTURE_ORDERS = (3, 4, 5)  # the count models a mixture chooses among, on validation text


def fit_count_models(corpus, orders=MIXTURE_ORDERS) -> list[CountModel]:
    """Count models of several orders on a corpus's training streams (a few seconds on the plays)."""
    streams = corpus.train_streams()
    return [count_model(streams, order) for order in orders]


def mix_with_counts(model: nn.Module, count_models: list[CountModel], validation) -> WithCounts:
    """`model` mixed with the count model and weight that do best together on the validation text (choose_counts);
    the choice, with the losses it was made on, at `.choice`."""
    if validation.num_heldout_tokens < 2:
        raise ValueError("Mixing with counts needs validation text: none was taken out of training "
                         "(give a validation_fraction above 0).")
    choice = choose_counts(model, count_models, validation)
    mixed = WithCounts(model, next(counts for counts in count_models if counts.order == choice["order"]),
                       choice["weight"])
    mixed.choice = choice
    return mixed
