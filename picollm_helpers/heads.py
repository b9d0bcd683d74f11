"""Section 5 (part one). Output heads and the loss.

A model's body turns token ids into hidden states (seq_len, batch, d); its head turns those
into a distribution over all of GPT-2's ids. With 50,257 ids the head is most of a small
model's work, so there are two kinds:

  full     a Linear to every id, as GPT-2 has.
  compact  a Linear to the ids a corpus uses (seen at least min_count times) plus one *bucket*
           that stands for every other id. The bucket's probability is shared among the ids it
           stands for by a prior fixed before training, so the head still gives a proper
           distribution over all ids, and its losses are full-vocabulary nats, comparable with
           a full head's.

The bucket's prior: "plays" shares it in proportion to how often each id occurs in the 25 works
the bundle trains on (plus a half, so that no id gets nothing), so that a rare word costs less
than a byte-pair nobody writes; "uniform" shares it evenly (what checkpoints written before the
prior existed were trained with).

A `Vocabulary` maps GPT-2 ids to the head's classes and back. The same map covers the input
embedding, so an id the model has never seen enters as the bucket too.

The training loss can be fused with the head's matrix product: computed chunk by chunk from
the hidden states and the head's weight, with its gradient, so that the (positions x classes)
logits of a whole batch never exist at once.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .sources import plays_source
from .tokenizer import GPT2_VOCAB_SIZE, get_tokenizer
from .tokens import tokenize_source

FUSED_CHUNK_ROWS = 1024  # positions per chunk: a chunk's logits are 1024 x 50,257 floats at most (200 MB)
TINY_PROBABILITY = 1e-30  # below this a float32 probability has lost its precision
BUCKET_PRIORS = ("plays", "uniform")
VOCABULARIES = ("auto", "gpt2", "corpus")
MIN_COUNT_PER_MILLION = 16
PRIOR_SMOOTHING = 0.5  # added to every id's count, so that an id never seen still has a share


@functools.lru_cache(maxsize=1)
def plays_token_counts() -> np.ndarray:
    """How often each GPT-2 id occurs in the works of the plays that runs train on (the held-out ones left out)."""
    return corpus_token_counts([tokenize_source(get_tokenizer(), plays_source()).ids], GPT2_VOCAB_SIZE)


def bucket_log_shares(prior: str, kept: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """log p(id | bucket) for every id (vocab_size,): its share of the bucket's probability under the prior;
    the kept ids, which are not in the bucket, get 0 here and are never read."""
    if prior not in BUCKET_PRIORS:
        raise ValueError(f"bucket={prior!r}: choose one of {', '.join(BUCKET_PRIORS)}.")
    weights = (torch.ones(vocab_size, dtype=torch.float64) if prior == "uniform" else
               torch.tensor(plays_token_counts()[:vocab_size] + PRIOR_SMOOTHING, dtype=torch.float64))
    weights = weights.index_fill(0, kept, 0.0)
    return (weights / weights.sum()).log().index_fill(0, kept, 0.0).float()


class Vocabulary(nn.Module):
    """Which ids of a vocabulary of `vocab_size` a model reads and writes.

    Full (`kept_ids=None`): every id is its own class. Compact: the kept ids are classes
    0..K-1, in increasing id order, and class K is the bucket for every other id, whose
    probability the `bucket` prior shares among them.
    """

    def __init__(self, vocab_size: int, kept_ids: list[int] | None = None, bucket: str = "plays"):
        super().__init__()
        self.vocab_size = vocab_size
        self.compact = kept_ids is not None
        self.prior = bucket
        if self.compact:
            kept = torch.tensor(sorted(set(kept_ids)), dtype=torch.long)
            check_kept_ids(kept, vocab_size, len(kept_ids))
            to_class = torch.full((vocab_size,), len(kept), dtype=torch.long)
            to_class[kept] = torch.arange(len(kept))
            self.register_buffer("kept_ids", kept, persistent=False)
            self.register_buffer("to_class", to_class, persistent=False)
            self.register_buffer("bucket_log_share", bucket_log_shares(bucket, kept, vocab_size), persistent=False)
            self.num_classes = len(kept) + 1
            self.bucket = len(kept)
            self.bucket_size = vocab_size - len(kept)
        else:
            self.num_classes = vocab_size

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """GPT-2 ids -> class ids (the identity for a full vocabulary)."""
        return self.to_class[tokens] if self.compact else tokens

    def in_bucket(self, tokens: torch.Tensor) -> torch.Tensor:
        """True where an id has no class of its own (never, for a full vocabulary)."""
        return self.to_class[tokens] == self.bucket if self.compact else torch.zeros_like(tokens, dtype=torch.bool)

    def expand(self, class_log_probs: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over classes (..., C) -> over every id (..., vocab_size).

        Each id in the bucket gets its share of the bucket's probability.
        """
        if not self.compact:
            return class_log_probs
        full = class_log_probs[..., self.bucket:] + self.bucket_log_share
        full[..., self.kept_ids] = class_log_probs[..., :self.bucket]
        return full

    def bucket_penalty(self, targets: torch.Tensor) -> torch.Tensor:
        """The nats a target (a GPT-2 id) costs beyond its class: -log of its share of the bucket, or 0 for
        a kept id."""
        if not self.compact:
            return torch.zeros(targets.shape, device=targets.device)
        return -self.bucket_log_share[targets]

    def ids(self) -> list[int] | None:
        """The kept ids (what a checkpoint stores to rebuild the map), or None for a full vocabulary."""
        return self.kept_ids.tolist() if self.compact else None


def check_kept_ids(kept: torch.Tensor, vocab_size: int, given: int) -> None:
    if len(kept) == 0:
        raise ValueError("A compact vocabulary needs at least one id: the corpus is empty, or min_count is "
                         "above every id's count. Use more text, a lower min_count, or vocab='gpt2'.")
    if len(kept) != given or kept[0] < 0 or kept[-1] >= vocab_size:
        raise ValueError(f"A compact vocabulary's ids must be distinct and lie in [0, {vocab_size}): "
                         "the id map is damaged.")
    if len(kept) == vocab_size:
        raise ValueError("A compact vocabulary that keeps every id has nothing for its bucket: use vocab='gpt2'.")


def corpus_token_counts(streams, vocab_size: int) -> np.ndarray:
    """How often each id occurs in some token streams (arrays of ids)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for stream in streams:
        counts += np.bincount(np.asarray(stream).ravel(), minlength=vocab_size)[:vocab_size]
    return counts


def ids_seen(streams, vocab_size: int, min_count: int = 1) -> list[int]:
    """The ids that occur at least min_count times in the streams: a compact vocabulary's kept ids."""
    if min_count < 1:
        raise ValueError(f"min_count={min_count}: it must be at least 1 (1 keeps every id the corpus uses).")
    counts = corpus_token_counts(streams, vocab_size)
    kept = np.flatnonzero(counts >= min_count).tolist()
    if not kept:
        raise ValueError(f"No id occurs {min_count} times or more in the training text: "
                         "use more text or a lower --min_count, or --vocab gpt2.")
    return kept


def auto_min_count(streams) -> int:
    """min_count="auto": keep the ids seen at least MIN_COUNT_PER_MILLION times per million training tokens
    (and at least once). A rarer id gets too few updates in a short run to earn a class of its own; the
    bucket's prior prices it instead. The rate is the one the recipe sweep measured best
    (benchmarks/recipe_defaults.py, artefacts/recipe_sweep.json)."""
    tokens = sum(len(stream) for stream in streams)
    return max(1, math.ceil(MIN_COUNT_PER_MILLION * tokens / 1e6))


def resolve_vocab(vocab: str, packed: bool, device) -> str:
    """vocab="auto": a compact head for packed runs on the CPU, where the head is most of a step's work
    (the recipe sweep measured it), and all of GPT-2's ids elsewhere (a GPU's matrix products are cheap,
    and the starter's per-example runs keep the starter's head)."""
    if vocab not in VOCABULARIES:
        raise ValueError(f"vocab={vocab!r}: use 'auto', 'gpt2' (every id) or 'corpus' (the ids the training text "
                         "uses).")
    if vocab != "auto":
        return vocab
    return "corpus" if packed and torch.device(device).type == "cpu" else "gpt2"


def vocab_ids_for(corpus, vocab: str = "corpus", min_count: int | str = 1) -> list[int] | None:
    """A head's kept ids for a corpus: vocab="corpus" keeps the ids its training text uses at least
    min_count times (an int, or "auto": auto_min_count); vocab="gpt2" keeps them all (None, the full head)."""
    if vocab not in ("gpt2", "corpus"):
        raise ValueError(f"vocab={vocab!r}: use 'gpt2' (every id) or 'corpus' (the ids the training text uses).")
    if vocab == "gpt2":
        return None
    streams = corpus.train_streams()
    return ids_seen(streams, GPT2_VOCAB_SIZE, auto_min_count(streams) if min_count == "auto" else min_count)


class OutputHead(nn.Module):
    """Hidden states -> logits over a vocabulary's classes, log-probabilities over every id, and the loss."""

    def __init__(self, d: int, vocabulary: Vocabulary, bias: bool = True):
        super().__init__()
        self.vocabulary = vocabulary
        self.linear = nn.Linear(d, vocabulary.num_classes, bias=bias)

    @property
    def weight(self) -> nn.Parameter:
        return self.linear.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over the classes (..., C)."""
        return self.linear(hidden)

    def log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over every id (..., vocab_size), summing to 1 at every position."""
        return self.vocabulary.expand(self.linear(hidden).float().log_softmax(dim=-1))

    def target_log_probs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) at every position (...), over every id, FUSED_CHUNK_ROWS positions at a time (so that a
        full head's logits never exist for a whole batch at once)."""
        flat_hidden, flat_targets = hidden.reshape(-1, hidden.shape[-1]), targets.flatten()
        pieces = []
        for start in range(0, len(flat_targets), FUSED_CHUNK_ROWS):
            rows = slice(start, start + FUSED_CHUNK_ROWS)
            classes = self.vocabulary.encode(flat_targets[rows])
            log_probs = self.linear(flat_hidden[rows]).float().log_softmax(dim=-1)
            pieces.append(log_probs.gather(1, classes.unsqueeze(1)).squeeze(1)
                          - self.vocabulary.bucket_penalty(flat_targets[rows]))
        return torch.cat(pieces).view(targets.shape)

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, counted: torch.Tensor | None = None,
             fused: bool = True, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Mean full-vocabulary cross-entropy (nats) of `targets` (GPT-2 ids) given `hidden`.

        hidden (..., d) and targets (...) line up position by position, unless `rows` (...) names
        the row of the flattened hidden states each target is predicted from (several targets may
        share a row: a k-gram model's recurring windows). `counted` (...), True where a target
        counts, leaves padding out of the mean. `fused` computes it chunk by chunk (see
        fused_linear_cross_entropy); else through the whole logits tensor.
        """
        targets = targets.flatten()
        classes = self.vocabulary.encode(targets)
        hidden = hidden.reshape(-1, hidden.shape[-1])
        rows = None if rows is None else rows.flatten()
        weights = position_weights(classes, None if counted is None else counted.flatten())
        if fused:
            nats = fused_linear_cross_entropy(hidden, self.linear.weight, self.linear.bias, classes, weights, rows)
        else:
            logits = self.linear(hidden).float()
            per_target = F.cross_entropy(logits if rows is None else logits[rows], classes, reduction="none")
            nats = (per_target * weights).sum()
        return nats + (self.vocabulary.bucket_penalty(targets) * weights).sum()


def position_weights(classes: torch.Tensor, counted: torch.Tensor | None) -> torch.Tensor:
    """1 / (number of counted positions) at each counted position, 0 elsewhere: the weights of a mean."""
    if counted is None:
        return torch.full(classes.shape, 1.0 / max(1, classes.numel()), device=classes.device)
    counted = counted.float()
    return counted / counted.sum().clamp(min=1.0)


class FusedLinearCrossEntropy(torch.autograd.Function):
    """sum_i w_i * cross_entropy(h_{r_i} W^T + b, t_i), with its gradient computed in the same pass.

    Target i is class t_i, predicted from row r_i of the hidden states, with weight w_i. For each
    chunk of rows: the logits, their softmax p, and the loss -log p[t] of each target predicted
    from them; then the gradient with respect to a row's logits, m * (p - q), where m is the sum
    of the row's target weights and q their weighted share of each class (onehot(t) when a row
    has one target). That gives the gradients of h, W and b by two matrix products. The weights m
    scale the small factors (the (rows x d) ones), never the (rows x classes) one. A chunk's
    logits are freed before the next chunk, and backward only scales the stored gradients.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, classes, weights, rows, chunk_rows, needs_grad):
        grad_hidden = torch.empty_like(hidden) if needs_grad else None
        grad_weight = torch.zeros_like(weight) if needs_grad else None
        grad_bias = torch.zeros_like(bias) if needs_grad and bias is not None else None
        row_weights = torch.zeros(hidden.shape[0], device=hidden.device).index_add_(0, rows, weights)
        by_row = torch.argsort(rows, stable=True)
        chunk_starts = range(0, hidden.shape[0], chunk_rows)
        bounds = torch.searchsorted(rows[by_row], torch.tensor([*chunk_starts, hidden.shape[0]], device=rows.device))
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start, first, last in zip(chunk_starts, bounds[:-1].tolist(), bounds[1:].tolist()):
            chunk = slice(start, start + chunk_rows)
            targets = by_row[first:last]
            h, m = hidden[chunk], row_weights[chunk]
            r, t, w = rows[targets] - start, classes[targets], weights[targets]
            logits = F.linear(h, weight, bias).float()
            probs = logits.softmax(dim=-1)
            total += (target_nats(logits, probs, r, t) * w).sum()
            del logits
            if needs_grad:  # under autocast the products below run in its precision, the sums in fp32
                shares = w / m[r].clamp(min=torch.finfo(m.dtype).tiny)  # 0 for a row whose targets all weigh 0
                probs.index_put_((r, t), -shares, accumulate=True)  # softmax - the targets' shares
                m = m.unsqueeze(1)
                grad_hidden[chunk] = (probs @ weight) * m
                grad_weight += probs.T @ (h * m)
                if grad_bias is not None:
                    grad_bias += m.squeeze(1) @ probs
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        scale = lambda grad: None if grad is None else grad * grad_output  # noqa: E731
        return scale(grad_hidden), scale(grad_weight), scale(grad_bias), None, None, None, None, None


def target_nats(logits: torch.Tensor, probs: torch.Tensor, rows: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """-log p[row, target] for each target, from the softmax (one fast pass); where p is too small for
    float32, from the log-sum-exp of that row's logits instead (exact, and rare)."""
    target_probs = probs[rows, classes]
    nats = -target_probs.log()
    tiny = target_probs < TINY_PROBABILITY
    if tiny.any():
        tiny_rows = logits[rows[tiny]]
        nats[tiny] = tiny_rows.logsumexp(dim=-1) - tiny_rows.gather(1, classes[tiny].unsqueeze(1)).squeeze(1)
    return nats


def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                               classes: torch.Tensor, weights: torch.Tensor, rows: torch.Tensor | None = None,
                               chunk_rows: int | None = None) -> torch.Tensor:
    """Weighted cross-entropy of a Linear layer's logits, never holding more than `chunk_rows` rows of them
    (FUSED_CHUNK_ROWS by default). `rows` names the row of `hidden` each target is predicted from (by
    default the target's own position).

    Under torch.no_grad (evaluation) it only computes the loss, chunk by chunk.
    """
    rows = torch.arange(len(classes), device=classes.device) if rows is None else rows
    chunk_rows = chunk_rows or FUSED_CHUNK_ROWS
    needs_grad = torch.is_grad_enabled() and any(
        tensor is not None and tensor.requires_grad for tensor in (hidden, weight, bias))
    return FusedLinearCrossEntropy.apply(hidden, weight, bias, classes, weights, rows, chunk_rows, needs_grad)
