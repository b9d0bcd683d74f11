"""A Transformer that starts from counting: its embedding and head start as the factors of the bigram counts
of its training text; the start is seeded, counted in a budget in seconds, and refused where it cannot work."""

import numpy as np
import pytest
import torch

import picollm_helpers as h
from picollm_helpers import count_start

TRAIN, HELDOUT = slice(0, 300_000), slice(400_000, 404_096)


@pytest.fixture(scope="module")
def plays_ids(enc):
    return np.asarray(h.tokenize_source(enc, h.plays_source()).ids)


@pytest.fixture(scope="module")
def windows(plays_ids):
    """Held-out text as 64 windows of 64 tokens (seq_len, batch)."""
    return torch.from_numpy(plays_ids[HELDOUT].astype(np.int64)).view(64, 64).t().contiguous()


def transformer(plays_ids, **overrides):
    torch.manual_seed(0)
    config = h.transformer_config("GPT-oss", d_model=128, n_blocks=4, n_heads=4, max_seq_len=64)
    return h.TransformerModel(config, vocab_ids=h.ids_seen([plays_ids[TRAIN]], h.GPT2_VOCAB_SIZE, 5),
                              **overrides).eval()


def loss(model, windows) -> float:
    with torch.no_grad():
        return float(model.next_token_loss(windows))


def factorised_loss(model, plays_ids, windows) -> float:
    """The held-out loss of the product of the two factors the start gives the embedding and the head (the
    bigram model the start ranks with, before the final norm flattens its rows)."""
    vocabulary = model.vocabulary
    classes = count_start.class_streams(model, [plays_ids[TRAIN]])
    kept = count_start.most_frequent_classes(classes, vocabulary.num_classes, count_start.STARTING_CLASSES)
    assert len(kept) == vocabulary.num_classes  # the compact head: every class is factorised
    table = count_start.bigram_log_probs(count_start.bigram_counts(classes, kept, vocabulary.num_classes))
    left, right = count_start.factorise(table, model.settings.d_model)
    logits = (left @ right.t())[vocabulary.encode(windows[:-1])]
    targets = windows[1:]
    log_probs = logits.log_softmax(-1).gather(-1, vocabulary.encode(targets).unsqueeze(-1)).squeeze(-1)
    return float((vocabulary.bucket_penalty(targets) - log_probs).mean())


def test_the_start_factorises_the_bigram_counts_of_the_training_text(plays_ids, windows):
    bigram = loss(h.count_model([plays_ids[TRAIN]], 2), windows)
    unigram = loss(h.count_model([plays_ids[TRAIN]], 1), windows)
    factorised = factorised_loss(transformer(plays_ids), plays_ids, windows)
    assert factorised < unigram - 0.5
    assert abs(factorised - bigram) < 0.4, (factorised, bigram)  # rank 128 of a 4,461-class table


def test_a_table_read_the_wrong_way_round_is_caught(plays_ids, windows, monkeypatch):
    """The check above fails for a start that predicts the previous token from the next (a transposed table)."""
    counts = count_start.bigram_counts
    monkeypatch.setattr(count_start, "bigram_counts", lambda *args: counts(*args).t())
    bigram = loss(h.count_model([plays_ids[TRAIN]], 2), windows)
    assert factorised_loss(transformer(plays_ids), plays_ids, windows) - bigram > 0.5


def test_before_its_first_step_the_model_ranks_the_next_token_as_the_factors_do(plays_ids):
    """The final norm rescales each token's logits but keeps their order: through the embedding, the norm and
    the head alone, every class's most likely successor is the factorised table's."""
    model = transformer(plays_ids)
    count_start.start_from_counts(model, [plays_ids[TRAIN]])
    classes = count_start.class_streams(model, [plays_ids[TRAIN]])
    num_classes = model.vocabulary.num_classes
    kept = count_start.most_frequent_classes(classes, num_classes, count_start.STARTING_CLASSES)
    left, right = count_start.factorise(count_start.bigram_log_probs(
        count_start.bigram_counts(classes, kept, num_classes)), model.settings.d_model)
    with torch.no_grad():
        logits = model.lm_head(model.final_norm(model.token_embedding.weight))
    assert torch.equal(logits.argmax(1), (left @ right.t()).argmax(1))
    assert model.token_embedding.weight.std().item() == pytest.approx(count_start.EMBEDDING_STD, rel=1e-3)


def test_every_row_of_the_bigram_table_is_a_distribution():
    counts = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    table = count_start.bigram_log_probs(counts).exp()
    assert torch.allclose(table.sum(1), torch.ones(3, dtype=torch.float64))
    assert (table > 0).all()  # what was never seen after a class keeps a share
    assert table[0, 1] > table[0, 2] > table[0, 0]


def test_the_start_is_seeded_and_leaves_the_global_generator_alone(plays_ids):
    first, second = transformer(plays_ids), transformer(plays_ids)
    torch.manual_seed(7)
    count_start.start_from_counts(first, [plays_ids[:50_000]])
    after_first = torch.rand(3)
    torch.manual_seed(7)
    count_start.start_from_counts(second, [plays_ids[:50_000]])
    assert torch.equal(after_first, torch.rand(3))
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)


def test_a_text_with_fewer_classes_than_the_width_still_starts(plays_ids):
    model = transformer(plays_ids)
    count_start.start_from_counts(model, [plays_ids[:40]])
    assert torch.isfinite(model.token_embedding.weight).all() and torch.isfinite(model.lm_head.weight).all()


@pytest.mark.parametrize("build", [
    lambda ids: h.build_model("lstm", vocab_size=h.GPT2_VOCAB_SIZE, embed_size=16, hidden_size=16),
    lambda ids: transformer(ids, tie_weights=True),
])
def test_a_model_that_cannot_start_from_counts_is_refused_by_name(plays_ids, build):
    with pytest.raises(h.InputError, match="cannot start from counts.*init='random'"):
        count_start.start_from_counts(build(plays_ids), [plays_ids[:1000]])


def test_too_little_text_to_count_pairs_in_is_refused(plays_ids):
    with pytest.raises(h.InputError, match="two tokens or more"):
        count_start.start_from_counts(transformer(plays_ids), [plays_ids[:1]])


def test_a_recipe_names_a_start_it_does_not_know():
    with pytest.raises(h.InputError, match="init='zeros' .*random or counts"):
        h.Recipe(init="zeros")


def small_corpus(plays_ids):
    stream = h.TokenStream("plays", plays_ids[:60_000])
    heldout = h.TokenStream("held out", plays_ids[HELDOUT])
    return h.PackedCorpus([stream], [1.0], [heldout], block_size=32)


def test_training_from_counts_starts_low_and_counts_its_seconds_in_the_budget(plays_ids):
    corpus = small_corpus(plays_ids)
    firsts = {}
    for init in ("random", "counts"):
        model = transformer(plays_ids).train()
        run = h.TrainingRun(budget=h.Budget(max_steps=3), batch_size=4, seed=0, recipe=h.Recipe(init=init))
        history = h.train_model(model, corpus, run, progress=False)
        firsts[init] = history["loss"].iloc[0]
        assert history.attrs["run"]["recipe"]["init"] == init
        assert ("seconds_starting_from_counts" in history.attrs) == (init == "counts")
    assert firsts["counts"] < firsts["random"] - 1.0
    timed = h.TrainingRun(budget=h.Budget(train_seconds=2.0), batch_size=4, seed=0, recipe=h.Recipe(init="counts"))
    history = h.train_model(transformer(plays_ids).train(), corpus, timed, progress=False)
    starting = history.attrs["seconds_starting_from_counts"]
    assert 0 < starting < history["elapsed_s"].iloc[0]  # the budget's clock began before the start
    assert history["elapsed_s"].iloc[-1] == pytest.approx(2.0, abs=0.5)


def test_an_lstm_in_a_run_that_starts_from_counts_starts_at_random_and_says_so(plays_ids):
    model = h.build_model("lstm", vocab_size=h.GPT2_VOCAB_SIZE, embed_size=16, hidden_size=16)
    run = h.TrainingRun(budget=h.Budget(max_steps=1), batch_size=2, seed=0, recipe=h.Recipe(init="counts"))
    history = h.train_model(model, small_corpus(plays_ids), run, progress=False)
    assert "seconds_starting_from_counts" not in history.attrs
