"""Count models: interpolated modified Kneser-Ney, checked against a plain reference written with dictionaries;
a proper distribution over every GPT-2 id; scored on the same targets as a neural model; no context off by one."""

import math
import time
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

import picollm_helpers as h

V = 50257


# ---------------------------------------------------------------- a reference written for reading, not speed


def reference_discounts(counts):
    n = Counter(min(c, 5) for c in counts if c > 0)
    if any(n[r] == 0 for r in (1, 2, 3, 4)):
        return [0.0, 0.75, 0.75, 0.75]
    y = n[1] / (n[1] + 2 * n[2])
    return [0.0] + [min(max(r - (r + 1) * y * n[r + 1] / n[r], 0.0), r) for r in (1, 2, 3)]


class ReferenceKneserNey:
    """Interpolated modified Kneser-Ney, one n-gram at a time, from Chen and Goodman's formulas."""

    def __init__(self, streams, order):
        self.order = order
        self.raw = [Counter() for _ in range(order + 1)]  # raw[n][ngram]
        for stream in streams:
            stream = list(map(int, stream))
            for n in range(1, order + 1):
                for end in range(n - 1, len(stream)):
                    self.raw[n][tuple(stream[end - n + 1:end + 1])] += 1
        self.counts = [None] * (order + 1)
        for n in range(1, order + 1):
            if n == order:
                self.counts[n] = dict(self.raw[n])
            else:
                continuation = Counter(gram[1:] for gram in self.raw[n + 1])
                self.counts[n] = {gram: continuation.get(gram, 0) for gram in self.raw[n]}
        self.discounts = [None] + [reference_discounts(self.counts[n].values()) for n in range(1, order + 1)]
        self.successors = [None] + [defaultdict(list) for _ in range(order)]
        for n in range(1, order + 1):
            for gram, count in self.counts[n].items():
                self.successors[n][gram[:-1]].append(count)

    def prob(self, history, word, leave_one_out=False, longer=None):
        """p(word | history), history the visible tokens before it (longest last)."""
        history = tuple(history[-(self.order - 1):]) if self.order > 1 else ()
        p = 1.0 / V
        for n in range(1, len(history) + 2):
            context = history[len(history) - n + 1:] if n > 1 else ()
            if n > 1 and context not in self.raw[n - 1]:
                break
            gram = context + (word,)
            c = self.counts[n].get(gram, 0)
            taken = 0
            if leave_one_out:
                if n == self.order:
                    taken = 1 if c > 0 else 0
                elif n < len(history) + 1:
                    longer_gram = history[len(history) - n:] + (word,)
                    taken = 1 if self.raw[n + 1].get(longer_gram, 0) == 1 else 0
            d = self.discounts[n]
            successors = self.successors[n][context]
            total = sum(successors) - taken
            gamma = sum(d[min(s, 3)] for s in successors if s > 0)
            if taken:
                gamma -= d[min(c, 3)] - (d[min(c - 1, 3)] if c - 1 > 0 else 0.0)
            if total <= 0:
                continue
            left = c - taken
            p = (max(left - (d[min(left, 3)] if left > 0 else 0.0), 0.0) + gamma * p) / total
        return p


def tiny_streams(seed=0):
    """Two short streams over a handful of ids, repetitive enough that every count of counts is filled."""
    rng = np.random.default_rng(seed)
    ids = np.array([13, 198, 262, 290, 318, 50256, 1110])
    return [ids[rng.integers(0, len(ids), size)] for size in (400, 250)]


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_the_vectorised_model_is_the_reference_formula_at_every_target(order):
    streams = tiny_streams()
    model = h.count_model(streams, order)
    reference = ReferenceKneserNey(streams, order)
    window = torch.from_numpy(np.asarray(tiny_streams(seed=1)[0][:40], dtype=np.int64)).view(-1, 1)
    got = model.target_probs(window)[:, 0]
    tokens = window[:, 0].tolist()
    expected = [reference.prob(tokens[:t + 1], tokens[t + 1]) for t in range(len(tokens) - 1)]
    assert got.tolist() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_leaving_one_out_scores_training_text_as_if_the_token_were_not_counted(order):
    streams = tiny_streams()
    model = h.count_model(streams, order)
    reference = ReferenceKneserNey(streams, order)
    window = torch.from_numpy(np.asarray(streams[0][100:140], dtype=np.int64)).view(-1, 1)
    got = model.target_probs(window, leave_one_out=True)[:, 0]
    tokens = window[:, 0].tolist()
    expected = [reference.prob(tokens[:t + 1], tokens[t + 1], leave_one_out=True) for t in range(len(tokens) - 1)]
    assert got.tolist() == pytest.approx(expected, rel=1e-9)
    in_sample = model.target_probs(window)[:, 0]
    assert -got.log().mean() > -in_sample.log().mean(), "text a model has counted scores better than text it has not"


@pytest.fixture(scope="module")
def plays_ids(enc):
    return np.asarray(h.tokenize_source(enc, h.plays_source()).ids)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_a_count_model_is_a_proper_distribution_over_every_gpt2_id(plays_ids, order):
    model = h.count_model([plays_ids[:200_000]], order)
    tokens = torch.from_numpy(plays_ids[300_000:300_024].astype(np.int64)).view(8, 3)
    probs = model.probs(tokens)
    assert probs.shape == (8, 3, V)
    assert (probs.sum(-1) - 1).abs().max() < 1e-9
    assert probs.min() > 0, "an id never seen still gets the uniform floor's share"
    targets = model.target_probs(tokens)
    assert torch.allclose(probs[:-1].gather(-1, tokens[1:].unsqueeze(-1)).squeeze(-1), targets, rtol=1e-12)


def test_a_count_model_is_scored_on_the_same_targets_as_a_neural_model(enc, plays_ids):
    heldout = h.standard_heldout(enc, block_size=64, max_tokens=3_000)
    counts = h.count_model([plays_ids], 3)
    neural = h.build_model("lstm", vocab_size=V, embed_size=8, hidden_size=8)
    scored_counts, scored_neural = h.evaluate(counts, heldout), h.evaluate(neural, heldout)
    assert scored_counts.tokens == scored_neural.tokens == 3_000
    by_hand = torch.cat([-counts.target_probs(tokens).log().flatten() for tokens, _ in heldout.heldout_batches(64)])
    assert scored_counts.nats_per_token == pytest.approx(float(by_hand.mean()), rel=1e-6)
    assert scored_counts.bits_per_char == pytest.approx(float(by_hand.sum()) / math.log(2) / heldout.heldout_characters,
                                                        rel=1e-6)


def predicts_from_the_token_before(model, tokens) -> bool:
    """On a text where every token fixes the next one, the model's best guess after t is the true token t+1."""
    probs = model.probs(tokens)
    return bool((probs[:-1].argmax(-1) == tokens[1:]).float().mean() > 0.95)


def test_a_context_off_by_one_is_caught(monkeypatch):
    cycle = np.array([262, 13, 198, 318, 1110, 290])  # each id is always followed by the same one
    streams = [np.tile(cycle, 60)]
    model = h.count_model(streams, 2)
    tokens = torch.from_numpy(np.tile(cycle, 3).astype(np.int64)).view(-1, 1)
    assert predicts_from_the_token_before(model, tokens)
    honest = model.target_probs(tokens)
    shifted = model.context_indices

    def one_token_late(tokens):
        contexts = shifted(tokens)
        return [torch.cat([torch.full_like(index[:1], -1), index[:-1]]) for index in contexts]

    monkeypatch.setattr(model, "context_indices", one_token_late)
    assert not predicts_from_the_token_before(model, tokens), "the planted off-by-one must be caught"
    assert (model.target_probs(tokens)[1:] < honest[1:] / 10).all()


def test_a_target_depends_on_its_window_only_never_on_what_follows(plays_ids):
    model = h.count_model([plays_ids[:100_000]], 4)
    tokens = torch.from_numpy(plays_ids[200_000:200_030].astype(np.int64)).view(-1, 1)
    changed = tokens.clone()
    changed[20:] = 13
    assert torch.equal(model.target_probs(tokens)[:19], model.target_probs(changed)[:19])
    assert not torch.equal(model.target_probs(tokens)[19:], model.target_probs(changed)[19:])


def test_fitting_every_order_on_the_plays_takes_seconds(plays_ids):
    started = time.perf_counter()
    models = [h.count_model([plays_ids], order) for order in range(1, 6)]
    assert time.perf_counter() - started < 15
    assert [model.order for model in models] == [1, 2, 3, 4, 5]


def test_bad_orders_and_empty_text_say_what_to_do():
    with pytest.raises(ValueError, match="order=6"):
        h.count_model([np.array([1, 2, 3])], 6)
    with pytest.raises(ValueError, match="empty"):
        h.count_model([np.array([], dtype=np.int64)], 2)


def test_a_count_model_samples_through_the_same_generator(enc, plays_ids):
    model = h.count_model([plays_ids], 3)
    text = h.generate_text(model, enc, "ROSALIND.\n", 30, h.Decoding(top_p=0.8), seed=0)
    assert text.startswith("ROSALIND.\n") and len(enc.encode(text)) > 25
    assert h.generate_text(model, enc, "ROSALIND.\n", 30, h.Decoding(top_p=0.8), seed=0) == text
