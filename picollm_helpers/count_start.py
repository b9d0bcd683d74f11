"""Section 5 (part four). A Transformer that starts from counting.

A freshly initialised Transformer knows nothing of its text: its embedding and head are random,
and its first seconds go into learning which tokens follow which, what a bigram table already
knows. It can start from that table instead.

At initialisation every block's residual branch is close to zero, so the hidden state at
position t is, nearly, the final norm of token t's embedding, and the logits are that times the
head. So factorise the bigram model's log-probabilities, L[prev, next] = log p(next | prev) with
each row centred (softmax ignores a constant per row), as L ~ U S V^T with rank d_model (a
randomised SVD), and start the embedding at U sqrt(S) and the head at V sqrt(S). Tokens that
are followed by the same tokens get embeddings that point the same way, and a token's logits
rank the next tokens as the bigram counts do.

Not at the bigram counts' sharpness, though: the final norm divides each hidden state by its
own length, which flattens the peaked rows of frequent tokens (the model at step 0 scores worse
than the unigram counts). A start that undoes this (every embedding topped up to one length
in a dimension of its own) scores as the bigram counts do at step 0, yet learnt less in the
same steps: that dimension dominates what every block reads. What counts is what the start
gives the steps that follow, so the bundle keeps the start that learnt best (measured in
artefacts/recipe_sweep.json).

The start helps while a run reads its text for the first time or so (the recipe sweep's 60-s rows:
0.04 nats lower than the random start); it does not last through many passes, where the started
model learns its text by heart sooner (artefacts/learning_speed_600.json: 600 s, six passes over
the plays, its held-out loss stops falling after about 300 s).

The bigram model is interpolated Kneser-Ney over the head's classes with one discount: the seen
pairs discounted, and what that frees shared by continuation counts (in how many contexts a
class follows). Only the STARTING_CLASSES most frequent classes are factorised (a dense table of
their bigrams); every class of the bundle's compact heads is among them, and the others of a
larger head keep their random start. The factorisation is seeded, so a seed gives the same
run, and takes about a second on the plays: a run budgeted in seconds counts it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .models import TransformerModel
from .presets import InputError

STARTING_CLASSES = 8192  # the most frequent classes whose bigrams are factorised: a dense (8192 x 8192) table at most
BIGRAM_DISCOUNT = 0.75
EMBEDDING_STD = 0.05  # the started embedding's spread, about GPT-2's 0.02 (each row's direction is what the norm keeps)
FACTORISATION_SEED = 0
POWER_ITERATIONS = 4


def class_streams(model: TransformerModel, streams) -> list[torch.Tensor]:
    """Token streams (arrays of GPT-2 ids) -> the model's class ids."""
    return [model.vocabulary.encode(torch.from_numpy(np.array(stream, dtype=np.int64))) for stream in streams]


def most_frequent_classes(classes: list[torch.Tensor], num_classes: int, limit: int) -> torch.Tensor:
    """The (at most) `limit` classes that occur most often, in increasing class order."""
    counts = sum(torch.bincount(stream, minlength=num_classes) for stream in classes)
    return counts.argsort(descending=True)[:limit].sort().values


def bigram_counts(classes: list[torch.Tensor], kept: torch.Tensor, num_classes: int) -> torch.Tensor:
    """How often each kept class follows each kept class, (K, K); pairs with another class are left out."""
    index = torch.full((num_classes,), -1, dtype=torch.long)
    index[kept] = torch.arange(len(kept))
    size = len(kept)
    counts = torch.zeros(size * size, dtype=torch.float64)
    for stream in classes:
        previous, following = index[stream[:-1]], index[stream[1:]]
        both = (previous >= 0) & (following >= 0)
        counts += torch.bincount(previous[both] * size + following[both], minlength=size * size).double()
    return counts.view(size, size)


def bigram_log_probs(counts: torch.Tensor, discount: float = BIGRAM_DISCOUNT) -> torch.Tensor:
    """Interpolated Kneser-Ney log p(next | previous) from bigram counts (K, K); every row sums to 1."""
    seen = (counts > 0).double()
    continuation = seen.sum(0) + 0.5  # a half more, so that a class that never follows anything keeps a share
    continuation = continuation / continuation.sum()
    totals = counts.sum(1, keepdim=True)
    freed = torch.where(totals > 0, discount * seen.sum(1, keepdim=True) / totals.clamp(min=1), 1.0)
    return ((counts - discount).clamp(min=0) / totals.clamp(min=1) + freed * continuation).log()


def factorise(log_probs: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred log-probabilities (K, K) ~ left @ right.T, each factor (K, rank), by a seeded randomised SVD (a
    table of fewer than `rank` classes leaves the factors' last columns zero)."""
    centred = (log_probs - log_probs.mean(1, keepdim=True)).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(FACTORISATION_SEED)
        u, s, v = torch.svd_lowrank(centred, q=min(rank, len(centred)), niter=POWER_ITERATIONS)
    padding = (0, rank - len(s))
    return F.pad(u * s.sqrt(), padding), F.pad(v * s.sqrt(), padding)


def can_start_from_counts(model) -> bool:
    """Whether a model's embedding reaches its head at step 0 through nothing but norms and near-zero branches
    (a Transformer), with a head of its own (untied: the two get different factors)."""
    return isinstance(model, TransformerModel) and not model.settings.tie_weights


def check_can_start_from_counts(model) -> None:
    if not can_start_from_counts(model):
        raise InputError(f"A {type(model).__name__} cannot start from counts: only a Transformer with an untied "
                         "head (tie_weights=False) can, whose embedding reaches its head at step 0 through norms "
                         "alone. Start it at random (init='random').")


@torch.no_grad()
def start_from_counts(model: TransformerModel, streams) -> None:
    """Start a Transformer's token embedding and head from the factors of the bigram table of the training
    streams (arrays of GPT-2 ids), in place of their random start."""
    check_can_start_from_counts(model)
    classes = class_streams(model, streams)
    if sum(len(stream) for stream in classes) < 2:
        raise InputError("init='counts' needs training text of two tokens or more to count bigrams in: give more "
                         "text, or init='random'.")
    num_classes = model.vocabulary.num_classes
    kept = most_frequent_classes(classes, num_classes, STARTING_CLASSES)
    table = bigram_log_probs(bigram_counts(classes, kept, num_classes))
    left, right = factorise(table, model.settings.d_model)
    right = right * left.pow(2).mean(1).sqrt().mean()  # the norm divides by each row's root mean square: on average
    embedding, head = model.token_embedding.weight, model.lm_head.weight
    embedding[kept.to(embedding.device)] = (left * (EMBEDDING_STD / left.std())).to(embedding)
    head[kept.to(head.device)] = right.to(head)
